import unittest

from _util import vigil


class PolicyTest(unittest.TestCase):
    def test_defaults_come_from_c(self):
        p = vigil.Policy()
        self.assertEqual(p.keepalive, 1)
        self.assertEqual(p.keepalive_idle_s, 60)
        self.assertEqual(p.keepalive_intvl_s, 10)
        self.assertEqual(p.keepalive_cnt, 6)
        self.assertEqual(p.user_timeout_ms, vigil.USER_TIMEOUT_AUTO)
        self.assertEqual(p.suspect_after_ms, vigil.SUSPECT_AUTO)
        self.assertEqual(p.output_limit, 4 * 1024 * 1024)
        self.assertIs(p.overflow_action, vigil.OverflowAction.CLOSE)
        self.assertIs(p.takeover, vigil.Takeover.NEWEST_WINS)
        self.assertEqual(p.max_frame, 65536)
        self.assertEqual(len(p.as_dict()), len(vigil.Policy.fields))

    def test_fields_set_by_keyword(self):
        p = vigil.Policy(ping_interval_ms=1000, dead_after_ms=3000,
                         idle_action=vigil.IdleAction.CLOSE, abort_dead=False)
        self.assertEqual((p.ping_interval_ms, p.dead_after_ms), (1000, 3000))
        self.assertIs(p.idle_action, vigil.IdleAction.CLOSE)
        self.assertEqual(p.abort_dead, 0)
        self.assertIn("dead_after_ms=3000", repr(p))

    def test_range_error_carries_c_message(self):
        with self.assertRaises(ValueError) as cm:
            vigil.Policy(keepalive_cnt=0)
        msg = str(cm.exception)
        self.assertIn("keepalive_cnt = 0", msg)
        self.assertIn("1..127", msg)
        with self.assertRaisesRegex(ValueError, "keepalive_idle_s.*32767"):
            vigil.Policy(keepalive_idle_s=40000)

    def test_relation_error(self):
        with self.assertRaisesRegex(ValueError, "ping_interval_ms"):
            vigil.Policy(ping_interval_ms=5000, dead_after_ms=3000)

    def test_value_outside_c_type(self):
        with self.assertRaisesRegex(ValueError, "dead_after_ms = -1"):
            vigil.Policy(dead_after_ms=-1)
        with self.assertRaisesRegex(ValueError, "keepalive_cnt"):
            vigil.Policy(keepalive_cnt=1 << 40)

    def test_unknown_keyword_and_wrong_type(self):
        with self.assertRaisesRegex(TypeError, "dead_after"):
            vigil.Policy(dead_after=3000)
        with self.assertRaises(TypeError):
            vigil.Policy(dead_after_ms=3.5)
        with self.assertRaises(TypeError):
            vigil.Policy(keepalive="yes")

    def test_immutable_and_replace(self):
        p = vigil.Policy(dead_after_ms=3000)
        with self.assertRaises(AttributeError):
            p.dead_after_ms = 10
        q = p.replace(keepalive_cnt=3)
        self.assertEqual((q.dead_after_ms, q.keepalive_cnt), (3000, 3))
        self.assertEqual(p.keepalive_cnt, 6)
        self.assertEqual(q, vigil.Policy(dead_after_ms=3000, keepalive_cnt=3))
        with self.assertRaises(ValueError):
            p.replace(keepalive_cnt=0)
        with self.assertRaises(AttributeError):
            p.no_such_field

    def test_fields_are_listed_by_dir_and_help(self):
        p = vigil.Policy(dead_after_ms=3000)
        listed = dir(p)
        for name in vigil.Policy.fields:
            with self.subTest(field=name):
                self.assertIn(name, listed)
                self.assertIn(name, dir(vigil.Policy))
                self.assertIn("vigil_policy." + name,
                              getattr(vigil.Policy, name).__doc__)
        self.assertIn("vigil.Takeover", vigil.Policy.takeover.__doc__)
        # Still read-only values, not settable slots.
        with self.assertRaisesRegex(AttributeError, "immutable"):
            p.keepalive = 0
        with self.assertRaises(AttributeError):
            del p.dead_after_ms
        self.assertEqual(p.dead_after_ms, 3000)


if __name__ == "__main__":
    unittest.main()
