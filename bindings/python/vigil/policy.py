"""vigil.Policy: an immutable, C-validated vigil_policy."""
import ctypes as C
import enum

from . import _types as T
from ._lib import lib

USER_TIMEOUT_OFF = 0
USER_TIMEOUT_AUTO = -1
SUSPECT_AUTO = 0xFFFFFFFF


class IdleAction(enum.IntEnum):
    NOTIFY = 0
    CLOSE = 1


class OverflowAction(enum.IntEnum):
    FAIL = 0
    CLOSE = 1


class Takeover(enum.IntEnum):
    NEWEST_WINS = 0
    OLDEST_WINS = 1
    ASK = 2


_ENUMS = {"idle_action": IdleAction, "overflow_action": OverflowAction,
          "takeover": Takeover}
_FIELDS = tuple(name for name, _ in T.PolicyStruct._fields_)
_BITS = {C.c_int: (True, 32), C.c_int64: (True, 64),
         C.c_uint32: (False, 32), C.c_size_t: (False, 8 * C.sizeof(C.c_size_t))}


def _fits(ctype, value):
    signed, bits = _BITS[ctype]
    if signed:
        return -(1 << (bits - 1)) <= value < (1 << (bits - 1))
    return 0 <= value < (1 << bits)


class Policy:
    """Every vigil_policy field as a keyword; the rest keep the C defaults
    (vigil_policy_init). Validation is the library's own
    (vigil_policy_validate): a bad value raises ValueError with its message,
    which names the field and its allowed range. Unknown keywords raise
    TypeError. Read fields as attributes (each is a read-only property, so
    dir() and help() list them); derive variants with replace()."""

    __slots__ = ("_struct",)
    fields = _FIELDS

    def __init__(self, **fields):
        s = T.PolicyStruct()
        lib.vigil_policy_init(C.byref(s))
        ctypes_of = dict(T.PolicyStruct._fields_)
        for name, value in fields.items():
            if name not in ctypes_of:
                raise TypeError("Policy() got an unexpected keyword argument "
                                "%r (fields: %s)" % (name, ", ".join(_FIELDS)))
            if not isinstance(value, int):  # bool and IntEnum are ints
                raise TypeError("%s must be an int, not %s"
                                % (name, type(value).__name__))
            if not _fits(ctypes_of[name], value):
                raise ValueError("%s = %d is out of range for its C type"
                                 % (name, value))
            setattr(s, name, int(value))
        msg = C.create_string_buffer(256)
        if lib.vigil_policy_validate(C.byref(s), msg, len(msg)) != 0:
            raise ValueError(msg.value.decode("utf-8", "replace"))
        object.__setattr__(self, "_struct", s)

    def __setattr__(self, name, value):
        raise AttributeError("Policy is immutable; use policy.replace(%s=...)"
                             % name)

    def replace(self, **changes):
        """A new Policy with some fields changed (validated again)."""
        return Policy(**dict(self.as_dict(), **changes))

    def as_dict(self):
        return {name: getattr(self, name) for name in _FIELDS}

    def __eq__(self, other):
        return isinstance(other, Policy) and self.as_dict() == other.as_dict()

    def __hash__(self):
        return hash(tuple(self.as_dict().values()))

    def __repr__(self):
        default = Policy.default().as_dict()
        changed = ["%s=%r" % (k, v) for k, v in self.as_dict().items()
                   if default[k] != v]
        return "vigil.Policy(%s)" % ", ".join(changed)

    @classmethod
    def default(cls):
        return cls()

    def _ref(self):
        """A pointer for C calls; valid while this Policy lives."""
        return C.pointer(self._struct)


def _field(name):
    """A read-only property for one vigil_policy field."""
    as_enum = _ENUMS.get(name)

    def get(self):
        value = getattr(self._struct, name)
        return as_enum(value) if as_enum is not None else value
    kind = ", a vigil." + as_enum.__name__ if as_enum is not None else ""
    return property(get, doc="vigil_policy.%s%s (include/vigil.h)"
                    % (name, kind))


for _name in _FIELDS:
    setattr(Policy, _name, _field(_name))


def policy_ref(policy):
    """C pointer for an optional Policy (None = library defaults)."""
    if policy is None:
        return None
    if not isinstance(policy, Policy):
        raise TypeError("policy must be a vigil.Policy, not %s"
                        % type(policy).__name__)
    return policy._ref()
