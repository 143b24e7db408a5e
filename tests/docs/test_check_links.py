#!/usr/bin/env python3
"""The link checker itself: it must report exactly the broken links of a
small tree that holds every kind of link it claims to handle, and pass a
tree whose links all resolve."""
import io
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_links  # noqa: E402

README = """# Project

See [the guide](docs/guide.md), its [deadlines](docs/guide.md#how-deadlines-are-kept),
[the code](src/), [the census header](include/census.h#L10) and
![a picture](docs/pic.png "title"), [external](https://example.com/x.md),
[mail](mailto:a@b.c) and [here](#project).

A reference: [ref][r1].

[r1]: docs/guide.md#peer-first-close-time_wait-on-the-client-not-the-server

`[not a link](nowhere.md)` is inline code.

```md
[not a link either](nowhere.md)
```
"""

GUIDE = """# Guide

## How deadlines are kept

## Peer-first close: TIME_WAIT on the client, not the server

## `vigil-census`

## Notes

## Notes

<a id="custom-anchor"></a>

Back to [the top](#guide), [the tool](#vigil-census), the second
[notes](#notes-1), a [custom anchor](#custom-anchor) and the
[README](../README.md#project).
"""

BROKEN = """# Broken

[missing file](missing.md), [missing anchor](guide.md#no-such-heading),
[third notes](guide.md#notes-2), [outside](../../etc/passwd),
[self anchor](#nope) and [ref][bad].

[bad]: ../src/missing.c
"""


class CheckLinks(unittest.TestCase):
    def tree(self, files):
        root = tempfile.mkdtemp()
        self.addCleanup(lambda: __import__("shutil").rmtree(root))
        for rel, text in files.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return root

    def run_checker(self, root):
        out = io.StringIO()
        with redirect_stdout(out):
            rc = check_links.main(["--root", root])
        return rc, out.getvalue()

    def test_good_tree_passes(self):
        root = self.tree({"README.md": README, "docs/guide.md": GUIDE,
                          "docs/pic.png": "", "src/x.c": "",
                          "include/census.h": ""})
        rc, out = self.run_checker(root)
        self.assertEqual(rc, 0, out)
        # README: 6 inline + 1 reference; guide: 5. External ones skipped.
        self.assertIn("12 relative link(s) in 2 file(s), 0 broken", out)

    def test_every_broken_link_is_reported(self):
        root = self.tree({"README.md": README, "docs/guide.md": GUIDE,
                          "docs/broken.md": BROKEN, "docs/pic.png": "",
                          "src/x.c": "", "include/census.h": ""})
        rc, out = self.run_checker(root)
        self.assertEqual(rc, 1, out)
        reported = sorted(l.split(": '", 1)[1].split("'", 1)[0]
                          for l in out.splitlines()
                          if l.startswith("broken link: "))
        self.assertEqual(reported, sorted([
            "missing.md", "guide.md#no-such-heading", "guide.md#notes-2",
            "../../etc/passwd", "#nope", "../src/missing.c"]), out)
        self.assertIn("points outside the repository", out)
        self.assertIn("no heading or anchor '#no-such-heading'", out)


if __name__ == "__main__":
    unittest.main()
