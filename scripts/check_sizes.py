#!/usr/bin/env python3
"""Size limits of the library code (docs/ARCHITECTURE.md): no file over 500 lines and no
function over 60 lines in a crate's `src/` (tests, benches and examples excluded; `#[cfg(test)]`
modules inside a library file are skipped). Prints each offender; exits 1 if there is one.

A function's length is counted from its `fn` line to its closing brace, found by matching
braces outside strings, chars and comments (enough for rustfmt-formatted code)."""
import re
import subprocess
import sys

MAX_FILE, MAX_FN = 500, 60
LIB_CRATES = ("shaders", "tensor", "autograd", "transformer", "lora", "train", "rag", "cli")


def strip(line, state):
    """The line with strings, chars and comments blanked; `state` carries a block comment."""
    out, i, n = [], 0, len(line)
    while i < n:
        if state["block"]:
            j = line.find("*/", i)
            if j < 0:
                return "".join(out)
            state["block"], i = False, j + 2
        elif line.startswith("//", i):
            break
        elif line.startswith("/*", i):
            state["block"], i = True, i + 2
        elif line[i] == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            out.append('""'), None
            i = j + 1
        elif line[i] == "'" and re.match(r"'(\\.|[^\\'])'", line[i:]):
            i += len(re.match(r"'(\\.|[^\\'])'", line[i:]).group(0))
        else:
            out.append(line[i])
            i += 1
    return "".join(out)


def long_functions(path):
    lines = open(path, encoding="utf-8").read().split("\n")
    state, found, stack, depth, skip_depth = {"block": False}, [], [], 0, None
    pending_test = False
    for no, raw in enumerate(lines, 1):
        if raw.strip().startswith("#[cfg(test)]"):
            pending_test = True
        code = strip(raw, state)
        m = re.search(r"\bfn\s+(\w+)", code)
        if m and skip_depth is None:
            stack.append((m.group(1), no, depth))
        if pending_test and re.search(r"\bmod\s+\w+", code) and skip_depth is None:
            skip_depth, pending_test = depth, False
        for ch in code:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if skip_depth is not None and depth == skip_depth:
                    skip_depth = None
                while stack and depth == stack[-1][2]:
                    name, start, _ = stack.pop()
                    if no - start + 1 > MAX_FN:
                        found.append((name, start, no - start + 1))
        if ";" in code and stack and depth == stack[-1][2] and "{" not in code[code.find("fn"):]:
            stack.pop()  # a declaration without a body (trait method)
    return found


def main():
    files = subprocess.run(["git", "ls-files", "*.rs"], capture_output=True, text=True, check=True).stdout.split()
    files += subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard", "*.rs"], capture_output=True, text=True, check=True
    ).stdout.split()
    bad = 0
    for f in sorted(set(files)):
        parts = f.split("/")
        if parts[0] not in LIB_CRATES or len(parts) < 3 or parts[1] != "src":
            continue
        n = sum(1 for _ in open(f, encoding="utf-8"))
        if n > MAX_FILE:
            print(f"{f}: {n} lines (limit {MAX_FILE})")
            bad += 1
        for name, start, length in long_functions(f):
            print(f"{f}:{start}: fn {name} is {length} lines (limit {MAX_FN})")
            bad += 1
    print(f"{bad} over the limits" if bad else "sizes ok: every library file and function within the limits")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
