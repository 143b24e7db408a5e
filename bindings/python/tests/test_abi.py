"""The ctypes mirrors must match the C compiler's layout exactly, and a
library of another version must be refused with a clear message. (How the
library is found: test_library.py.)"""
import ctypes
import json
import os
import subprocess
import unittest

from _util import vigil
from vigil import _ev
from vigil import _lib
from vigil import _types


class AbiTest(unittest.TestCase):
    def test_struct_layouts_match_c(self):
        dump = os.environ.get("VIGIL_ABI_DUMP")
        if not dump:
            self.skipTest("VIGIL_ABI_DUMP not set (ctest sets it)")
        layout = json.loads(subprocess.run([dump], check=True, timeout=30,
                                           capture_output=True).stdout)
        for name, want in layout.items():
            cls = getattr(_types, name, None) or getattr(_ev, name)
            with self.subTest(struct=name):
                if name == "EventHead":  # a prefix of vigil_event
                    self.assertLessEqual(ctypes.sizeof(cls), want["size"])
                else:
                    self.assertEqual(ctypes.sizeof(cls), want["size"])
                for field, offset in want["fields"].items():
                    self.assertEqual(getattr(cls, field).offset, offset,
                                     "%s.%s" % (name, field))

    def test_version_check(self):
        self.assertEqual(_lib.check_version(0x000100, "x"), (0, 1, 0))
        self.assertEqual(_lib.check_version(0x000107, "x"), (0, 1, 7))
        with self.assertRaises(vigil.LibraryError) as cm:
            _lib.check_version(0x000200, "/opt/libvigil.so")
        msg = str(cm.exception)
        self.assertIn("/opt/libvigil.so is version 0.2.0", msg)
        self.assertIn("written for 0.1.x", msg)
        self.assertEqual(vigil.library_version, vigil.__version__)


if __name__ == "__main__":
    unittest.main()
