#!/usr/bin/env python3
"""Checks that every relative link in the project's Markdown resolves.

    check_links.py [--root DIR] [FILE.md ...]

Without files it checks README.md and every docs/**/*.md under the root
(default: the repository this script lives in). For each inline link,
image or reference definition whose target has no URL scheme, the target
must be an existing file or directory inside the root; a `#anchor` on a
Markdown target (or on the file itself) must name one of its headings, as
GitHub derives heading anchors, or an explicit <a id="..."> / name="...".
Code blocks and inline code are not links and are skipped.

Prints one line per broken link and exits 1 if there is any, else 0.
"""
import argparse
import os
import re
import sys
import urllib.parse

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:id|name)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text):
    """Yields (line number, line) for lines outside fenced code blocks."""
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif line.strip().startswith(fence):
                fence = None
            continue
        if fence is None:
            yield n, line


def slug(heading):
    """GitHub's anchor for a heading: the rendered text, lower case,
    punctuation other than '-' and '_' dropped, spaces made '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links -> text
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    text = re.sub(r"<[^>]+>", "", text)                        # inline HTML
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors_of(path, cache={}):
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found, seen = set(), {}
        for _, line in prose_lines(text):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else "%s-%d" % (base, n))
            found.update(HTML_ANCHOR.findall(line))
        cache[path] = found
    return cache[path]


def links_of(text):
    """Yields (line number, target) for every link target in prose."""
    for n, line in prose_lines(text):
        m = REF_DEF.match(line)
        if m:
            yield n, m.group(1)
            continue
        line = CODE_SPAN.sub("code", line)
        for m in INLINE_LINK.finditer(line):
            yield n, m.group(1)


def check_file(md, root):
    """Returns (relative links checked, 'file:line: message' strings for
    the broken ones)."""
    with open(md, encoding="utf-8") as f:
        text = f.read()
    rel_md = os.path.relpath(md, root)
    checked, broken = 0, []
    for n, target in links_of(text):
        if not target or SCHEME.match(target) or target.startswith("//"):
            continue
        checked += 1
        path, _, anchor = target.partition("#")
        path = urllib.parse.unquote(path)
        dest = os.path.normpath(os.path.join(os.path.dirname(md), path)) if path else md
        where = "%s:%d: '%s'" % (rel_md, n, target)
        if os.path.commonpath([root, dest]) != root:
            broken.append(where + " points outside the repository")
        elif not os.path.exists(dest):
            broken.append(where + ": no such file or directory")
        elif anchor and dest.endswith(".md") and os.path.isfile(dest):
            if anchor not in anchors_of(dest):
                broken.append(where + ": no heading or anchor '#%s' in %s"
                              % (anchor, os.path.relpath(dest, root)))
    return checked, broken


def default_files(root):
    files = [os.path.join(root, "README.md")]
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "docs")):
        dirnames.sort()
        files += [os.path.join(dirpath, f) for f in sorted(filenames)
                  if f.endswith(".md")]
    return files


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(here, "..", ".."))
    ap.add_argument("files", nargs="*")
    args = ap.parse_args(argv)
    root = os.path.realpath(args.root)
    files = [os.path.realpath(f) for f in args.files] or default_files(root)
    checked, broken = 0, []
    for md in files:
        n, bad = check_file(md, root)
        checked += n
        broken += bad
    for line in broken:
        print("broken link: " + line)
    print("%d relative link(s) in %d file(s), %d broken"
          % (checked, len(files), len(broken)))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
