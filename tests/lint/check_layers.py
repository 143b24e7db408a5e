#!/usr/bin/env python3
"""Layering check for src/: who calls whom, OpenSSL confinement, and no
internal call into vigil's own host-facing API.

Builds the graph of the library's sources (src/*.c and src/*/*.c, but not
the src/cli tools) in which file A has an edge to file B when a
function of A calls a function defined in B (a call through a function
pointer, such as a transport or protocol hook, is not an edge: that is the
point of the plug-ins). Calls to `static inline` functions of src/*.h count
as calls to whatever those inline functions call. Both builds are checked:
with TLS, and without (cmake -DVIGIL_TLS=OFF: tls_off.c in place of the
TLS sources). Then:

  1. prints the largest strongly connected component (a circle of files
     calling each other) and fails if it has more than MAX_SCC files;
  2. fails if a source that is not part of TLS (tls_*.c, tls_*.h, but for
     tls_off.c and tls_options.c, which are built without TLS) includes an
     OpenSSL header, directly or through a src/ header;
  3. fails if src/ calls a host-facing public function: one declared with
     VIGIL_EXPORT in include/ that takes a vigil_hub, vigil_conn,
     vigil_listener or vigil_client handle. Those check their arguments
     and bracket re-entrancy for hosts; internal paths call the internal
     function underneath. One exception, HUB_HOSTS: a hub group's worker
     is a host of its hub, outside every bracket of it, and creates,
     shuts down and frees it through the public lifecycle calls as any
     host does.

Usage: check_layers.py [SOURCE_DIR] [--graph] [--report]
  --graph   also print every edge
  --report  print the numbers and never fail (for before/after records)
Exit status: 0 clean, 1 a rule is broken, 2 usage or I/O error.
Standard library only: it runs in CI before anything else is installed.
"""
import os
import re
import sys

MAX_SCC = 3
TLS_OFF = "tls_off.c"        # stands in for the TLS sources without TLS
TLS_ALWAYS = "tls_options.c" # part of both builds, no OpenSSL
REDIS_OFF = "cluster_off.c"  # stands in for src/cluster without hiredis
HANDLE_TYPES = ("vigil_hub", "vigil_conn", "vigil_listener", "vigil_client")
HUB_HOSTS = {"group_worker.c": {"vigil_hub_new", "vigil_hub_shutdown",
                                "vigil_hub_free"}}
NOT_CALLS = {
    "if", "for", "while", "switch", "return", "sizeof", "defined",
    "_Static_assert", "__attribute__", "alignof", "_Alignof", "typeof",
    "__typeof__", "offsetof",
}


def strip_c(text):
    """Removes comments and the contents of string and char literals,
    keeping newlines so line numbers stay meaningful."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_preprocessor(text):
    """Blanks preprocessor lines (with their continuations)."""
    lines = text.split("\n")
    out, cont = [], False
    for line in lines:
        if cont or line.lstrip().startswith("#"):
            cont = line.rstrip().endswith("\\")
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


FUNC_HEAD = re.compile(r"([A-Za-z_]\w*)\s*\(([^;{}()]*(?:\([^()]*\)[^;{}()]*)*)\)\s*"
                       r"(?:__attribute__\s*\(\([^)]*\)\)\s*)?\{")
CALL = re.compile(r"(?<![\w.>])([A-Za-z_]\w*)\s*\(")


def functions(text):
    """Yields (name, is_static, body) for each function defined at file
    scope in preprocessed-free, comment-free C text."""
    depth = 0
    i, n = 0, len(text)
    stmt_start = 0
    while i < n:
        c = text[i]
        if c == "{":
            if depth == 0:
                head = text[stmt_start:i + 1]
                m = None
                for m in FUNC_HEAD.finditer(head):
                    pass
                if m and m.end() == len(head) and "=" not in head[:m.start()]:
                    # Find the matching brace.
                    d, j = 1, i + 1
                    while j < n and d:
                        if text[j] == "{":
                            d += 1
                        elif text[j] == "}":
                            d -= 1
                        j += 1
                    prefix = head[:m.start()]
                    yield m.group(1), bool(re.search(r"\bstatic\b", prefix)), \
                        text[i + 1:j - 1]
                    i = j
                    stmt_start = i
                    continue
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                stmt_start = i + 1
        elif c == ";" and depth == 0:
            stmt_start = i + 1
        i += 1


def calls_in(body):
    names = set()
    for m in CALL.finditer(body):
        name = m.group(1)
        if name not in NOT_CALLS:
            names.add(name)
    return names


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def host_facing_api(include_dir):
    """Names of exported functions that take a handle."""
    api = set()
    decl = re.compile(r"VIGIL_EXPORT\s+[^;(]*?\b(vigil_\w+)\s*\(([^;]*?)\)\s*;",
                      re.S)
    for root, _, files in os.walk(include_dir):
        for f in files:
            if not f.endswith(".h"):
                continue
            text = strip_c(read(os.path.join(root, f)))
            for m in decl.finditer(text):
                params = m.group(2)
                if any(re.search(r"\b%s\s*\*" % t, params)
                       for t in HANDLE_TYPES):
                    api.add(m.group(1))
    return api


def tarjan(nodes, edges):
    index, low, on, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return sccs


def is_tls(name):
    return os.path.basename(name).startswith("tls_")


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    flags = {a for a in argv[1:] if a.startswith("--")}
    if flags - {"--graph", "--report"} or len(args) > 1:
        print(__doc__.split("Usage:")[1].split("Exit")[0].strip())
        return 2
    root = args[0] if args else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "..")
    src = os.path.join(root, "src")
    include = os.path.join(root, "include")
    if not os.path.isdir(src) or not os.path.isdir(include):
        print("check_layers: no src/ and include/ under %s" % root)
        return 2

    # The library's sources: src/ and its subdirectories (src/cluster...),
    # not src/cli, whose tools are programs of their own.
    found = []
    for root, dirs, files in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d != "cli")
        rel = os.path.relpath(root, src)
        found += [f if rel == "." else os.path.join(rel, f) for f in files]
    all_c = sorted(f for f in found if f.endswith(".c"))
    h_files = sorted(f for f in found if f.endswith(".h"))
    problems = []
    # The builds (cmake VIGIL_TLS, VIGIL_REDIS): with TLS, and without,
    # where tls_off.c stands in for the TLS sources but tls_options.c;
    # both with src/cluster (hiredis); and without it, where cluster_off.c
    # stands in for src/cluster.
    with_redis = [f for f in all_c if f != REDIS_OFF]
    builds = [
        ("with TLS", [f for f in with_redis if f != TLS_OFF]),
        ("without TLS", [f for f in with_redis
                         if not is_tls(f) or f in (TLS_OFF, TLS_ALWAYS)]),
        ("without Redis", [f for f in all_c if f != TLS_OFF and
                           not f.startswith("cluster" + os.sep)]),
    ]
    for name, c_files in builds:
        if TLS_OFF not in all_c and name == "without TLS":
            continue
        if REDIS_OFF not in all_c and name == "without Redis":
            continue
        check_graph(src, include, name, c_files, h_files, flags, problems)
    for p in problems:
        print("check_layers: " + p)
    if "--report" in flags:
        return 0
    return 1 if problems else 0


def check_graph(src, include, build, c_files, h_files, flags, problems):
    defined = {}        # extern function -> file
    calls = {}          # file -> set of names called
    inline = {}         # header inline function -> names it calls

    for f in h_files:
        text = drop_preprocessor(strip_c(read(os.path.join(src, f))))
        for name, _, body in functions(text):
            inline[name] = calls_in(body)
    for f in c_files:
        text = drop_preprocessor(strip_c(read(os.path.join(src, f))))
        names = set()
        local = set()
        for name, static, body in functions(text):
            if static:
                local.add(name)
            else:
                if name in defined and defined[name] != f:
                    problems.append("%s defined in both %s and %s" %
                                    (name, defined[name], f))
                defined[name] = f
            names |= calls_in(body)
        calls[f] = names - local

    def resolve(names, seen=None):
        """Expands calls to header inline functions."""
        seen = set() if seen is None else seen
        out = set()
        for name in names:
            if name in inline and name not in seen:
                seen.add(name)
                out |= resolve(inline[name], seen)
            else:
                out.add(name)
        return out

    edges = {}
    for f, names in calls.items():
        for name in resolve(names):
            g = defined.get(name)
            if g and g != f:
                edges.setdefault(f, set()).add(g)

    sccs = tarjan(c_files, edges)
    largest = max(sccs, key=len)
    nedges = sum(len(v) for v in edges.values())
    print("src/ (%s): %d files, %d who-calls-whom edges" %
          (build, len(c_files), nedges))
    if len(largest) > 1:
        print("largest circle: %d files: %s" % (len(largest),
                                               " ".join(largest)))
    else:
        print("largest circle: none (no file calls back into its callers)")
    for comp in sccs:
        if len(comp) > 1 and comp is not largest:
            print("other circle: %d files: %s" % (len(comp), " ".join(comp)))
    if "--graph" in flags:
        for f in sorted(edges):
            print("  %s -> %s" % (f, " ".join(sorted(edges[f]))))
    if len(largest) > MAX_SCC:
        problems.append("%s: a circle of %d files (at most %d allowed): %s" %
                        (build, len(largest), MAX_SCC, " ".join(largest)))

    # OpenSSL stays inside the TLS files, also through src/ headers.
    ssl_inc = re.compile(r"^\s*#\s*include\s*[<\"]openssl/", re.M)
    local_inc = re.compile(r"^\s*#\s*include\s*\"([^\"]+)\"", re.M)
    texts = {f: read(os.path.join(src, f)) for f in c_files + h_files}
    by_name = {os.path.basename(f): f for f in h_files}

    def pulls_openssl(f, seen):
        if f in seen or f not in texts:
            return None
        seen.add(f)
        if ssl_inc.search(texts[f]):
            return f
        for h in local_inc.findall(texts[f]):
            via = pulls_openssl(by_name.get(os.path.basename(h), h), seen)
            if via:
                return via
        return None

    for f in c_files + h_files:
        via = None if is_tls(f) and f not in (TLS_OFF, TLS_ALWAYS) \
            else pulls_openssl(f, set())
        if not via:
            continue
        msg = "%s includes an OpenSSL header%s (only tls_* may)" % (
            f, "" if via == f else " through " + via)
        if msg not in problems:
            problems.append(msg)

    # Internal code never calls the host-facing API.
    api = host_facing_api(include)
    for f in c_files:
        text = drop_preprocessor(strip_c(read(os.path.join(src, f))))
        for name, _, body in functions(text):
            bad = sorted(resolve(calls_in(body)) & api
                         - HUB_HOSTS.get(f, set()))
            for b in bad:
                msg = "%s: %s() calls the public %s()" % (f, name, b)
                if msg not in problems:
                    problems.append(msg)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
