"""vigil.TcpState, the kernel's TCP states, and StateCounts, the per-state
socket counts of a census."""
import enum


class TcpState(enum.IntEnum):
    """A kernel TCP state (vigil_tcp_state, numbered as in the kernel's
    tcp_states.h). It compares equal to the kernel's number. Its name is
    what vigil_tcp_state_name() and netstat print ("CLOSE_WAIT").

    A number outside this list gives a TcpState named UNKNOWN that keeps
    the number. Newer kernels add states (TCP_BOUND_INACTIVE in 6.7), and
    reading a socket's state must not fail because of that."""

    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11
    NEW_SYN_RECV = 12

    @classmethod
    def _missing_(cls, value):
        if not isinstance(value, int):
            return None  # Enum raises its usual ValueError
        unknown = int.__new__(cls, value)
        unknown._name_ = "UNKNOWN"
        unknown._value_ = value
        return unknown


class StateCounts(dict):
    """Socket counts per TCP state. The keys are state names ("CLOSE_WAIT"),
    the same keys as the vigil-census JSON. A TcpState or a state number
    also finds its entry: counts[TcpState.CLOSE_WAIT] == counts["CLOSE_WAIT"].
    """

    __slots__ = ()

    @staticmethod
    def _key(key):
        return TcpState(key).name if isinstance(key, int) else key

    def __getitem__(self, key):
        return super().__getitem__(self._key(key))

    def __contains__(self, key):
        return super().__contains__(self._key(key))

    def get(self, key, default=None):
        return super().get(self._key(key), default)
