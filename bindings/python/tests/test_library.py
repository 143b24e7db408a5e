"""How the package finds libvigil (vigil/_lib.py): the search order, the
path it reports, the error that lists what was tried. With
VIGIL_TEST_INSTALLED=1 (run_installed.sh) also that the installed package
found the installed library, not the source or build tree."""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import unittest

from _util import INSTALLED, PACKAGE_SOURCE, python_env, vigil
from vigil import _lib

SONAME = "libvigil.so.0"


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()
    return path


def libdirs(prefix):
    multiarch = sysconfig.get_config_var("MULTIARCH")
    return ([os.path.join(prefix, "lib", multiarch, SONAME)]
            if multiarch else []) + [os.path.join(prefix, "lib", SONAME),
                                     os.path.join(prefix, "lib64", SONAME)]


class SearchOrderTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)

    def test_explicit_library_is_the_only_candidate(self):
        order = list(_lib.search_order({"VIGIL_LIBRARY": "/x/libvigil.so",
                                        "VIGIL_BUILD_DIR": "/b"},
                                       package_dir=PACKAGE_SOURCE + "/vigil",
                                       prefixes=("/usr/local",)))
        self.assertEqual(order, ["/x/libvigil.so"])

    def test_installed_package(self):
        package = os.path.join(self.tmp, "site-packages", "vigil")
        bundled = touch(os.path.join(package, "libvigil.so.0"))
        order = list(_lib.search_order({"VIGIL_BUILD_DIR": "/b"}, package,
                                       prefixes=("/venv", "/usr/local",
                                                 "/venv")))
        # No build tree outside a checkout, even with VIGIL_BUILD_DIR set.
        self.assertEqual(order, [bundled, SONAME, _lib.FIND_LIBRARY]
                         + libdirs("/venv") + libdirs("/usr/local"))

    def test_source_checkout_tries_its_build_trees_first(self):
        touch(os.path.join(self.tmp, "include", "vigil.h"))
        touch(os.path.join(self.tmp, "bindings", "python", "pyproject.toml"))
        package = os.path.join(self.tmp, "bindings", "python", "vigil")
        os.makedirs(package)
        order = list(_lib.search_order({"VIGIL_BUILD_DIR": "/b"}, package,
                                       prefixes=("/usr/local",)))
        self.assertEqual(order[:4], [
            "/b/libvigil.so", os.path.join(self.tmp, "build", "libvigil.so"),
            SONAME, _lib.FIND_LIBRARY])
        self.assertEqual(_lib.source_checkout(package), self.tmp)
        self.assertEqual(_lib.source_checkout(os.path.dirname(
            vigil.__file__)), None if INSTALLED else os.path.dirname(
                os.path.dirname(PACKAGE_SOURCE)))

    def test_prefix_copy_is_loaded_and_reported(self):
        # cmake --install into a prefix the loader does not know: the
        # probe of <prefix>/lib* finds it, and library_path says where.
        for want in reversed(libdirs(self.tmp)):
            with self.subTest(path=want):
                os.makedirs(os.path.dirname(want), exist_ok=True)
                shutil.copy(vigil.library_path, want)
                probes = [p for p in _lib.search_order({}, self.tmp,
                                                       (self.tmp,))
                          if p.startswith(self.tmp)]
                lib, path, version = _lib.load(probes)
                self.assertEqual(path, want)
                self.assertEqual(version, _lib.version)
                os.unlink(want)

    def test_bare_name_reports_the_file_the_loader_chose(self):
        # libvigil.so.0 is loaded already: the loader hands that one back.
        lib, path, _ = _lib.load([SONAME])
        self.assertEqual(os.path.realpath(path),
                         os.path.realpath(vigil.library_path))
        self.assertTrue(os.path.isabs(path))

    def test_unusable_candidates_are_skipped_and_listed(self):
        missing = os.path.join(self.tmp, "lib", SONAME)
        lib, path, _ = _lib.load([missing, "libc.so.6", vigil.library_path])
        self.assertEqual(path, vigil.library_path)
        with self.assertRaises(vigil.LibraryError) as cm:
            _lib.load([missing, "libc.so.6", "libvigil-nope.so.0"])
        msg = str(cm.exception)
        self.assertIn("no usable libvigil.so.0 (version 0.1.x)", msg)
        self.assertIn("1. %s: no such file" % missing, msg)
        self.assertRegex(msg, r"2\. /\S*libc\.so\.6: not libvigil")
        self.assertIn("3. libvigil-nope.so.0: cannot open", msg)
        self.assertIn("set VIGIL_LIBRARY", msg)
        self.assertNotIn("nothing else was tried", msg)

    def test_missing_explicit_library(self):
        env = python_env(VIGIL_LIBRARY="/nonexistent/libvigil.so")
        r = subprocess.run([sys.executable, "-c", "import vigil"], env=env,
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("LibraryError", r.stderr)
        self.assertIn("1. /nonexistent/libvigil.so: no such file", r.stderr)
        self.assertIn("VIGIL_LIBRARY is set, so nothing else was tried",
                      r.stderr)

    def test_library_path_is_the_one_asked_for(self):
        want = os.environ.get("VIGIL_LIBRARY")
        if want:
            self.assertEqual(vigil.library_path, want)
        self.assertTrue(os.path.isfile(vigil.library_path))


@unittest.skipUnless(INSTALLED, "needs VIGIL_TEST_INSTALLED=1 (run_installed.sh)")
class InstalledTest(unittest.TestCase):
    """The package pip installed found the library cmake installed."""

    def test_package_comes_from_the_environment(self):
        site = sysconfig.get_paths()["purelib"]
        self.assertEqual(os.path.dirname(os.path.dirname(vigil.__file__)),
                         site)
        self.assertEqual(importlib.metadata.version("vigil"),
                         vigil.__version__)
        self.assertIsNone(_lib.source_checkout(os.path.dirname(
            vigil.__file__)))

    def test_library_comes_from_the_install_prefix(self):
        prefix = os.path.realpath(os.environ["VIGIL_TEST_PREFIX"])
        self.assertNotIn("VIGIL_LIBRARY", os.environ)  # a real search
        self.assertTrue(os.path.realpath(vigil.library_path).startswith(
            prefix + os.sep), vigil.library_path)
        self.assertEqual(os.path.basename(vigil.library_path), SONAME)

    def test_no_way_into_the_checkout(self):
        # Without the prefix on the loader path the package must not fall
        # back on the source or build tree: it fails, listing only the
        # loader, its own venv and the common prefixes, or it finds a
        # library installed outside the checkout.
        env = python_env(LD_LIBRARY_PATH=None, VIGIL_BUILD_DIR=None)
        r = subprocess.run(
            [sys.executable, "-c", "import vigil; print(vigil.library_path)"],
            env=env, capture_output=True, text=True, timeout=30,
            cwd=os.environ["VIGIL_TEST_PREFIX"])
        top = os.path.dirname(os.path.dirname(PACKAGE_SOURCE)) + os.sep
        if r.returncode == 0:
            self.assertFalse(os.path.realpath(r.stdout.strip()).startswith(
                top), r.stdout)
            return
        tried = re.findall(r"^  \d+\. (/[^:]*):", r.stderr, re.M)
        self.assertTrue(tried, r.stderr)
        for path in tried:
            self.assertTrue(path.startswith(sys.prefix + os.sep)
                            or not path.startswith(top), path)

if __name__ == "__main__":
    unittest.main()
