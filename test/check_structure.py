#!/usr/bin/env python3
"""The code's shape, checked:  python3 test/check_structure.py [REPO]

1. src/sql/*.sql are layered: a file uses only owsync objects (functions, procedures, views,
   tables, types) defined in itself or in files numbered lower.  GRANT, REVOKE and COMMENT ON
   only name objects and are left out; inside string literals (dynamic SQL) calls and relations
   after FROM, JOIN, INTO, UPDATE, TABLE or :: count.
2. No SQL routine is longer than MAX_LINES lines (its CREATE line to the end of its body).
3. The C files call each other without a cycle (from the built objects src/*.o, when present:
   nm's undefined symbols of one object resolved to the global functions another defines).
Prints the dependency order, the longest routines and the C call graph; exits 1 on a breach.
"""
import glob
import os
import re
import subprocess
import sys

MAX_LINES = 100
repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..')
files = sorted(glob.glob(os.path.join(repo, 'src/sql/*.sql')))
name = os.path.basename
breaches = []

# 1. layering
defre = re.compile(r'CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE|VIEW|TABLE|TYPE)\s+owsync\.(\w+)', re.I)
strre = re.compile(r"'(?:[^']|'')*'")
defined, code, strings = {}, {}, {}
for f in files:
    src = re.sub(r'--[^\n]*', '', open(f).read())
    src = re.sub(r'(?ims)^\s*(GRANT|REVOKE|COMMENT\s+ON)\b.*?;[ \t]*$', '', src)
    strings[f] = ' '.join(m.group(0) for m in strre.finditer(src))
    code[f] = strre.sub("''", src)
    for m in defre.finditer(code[f]):
        defined.setdefault(m.group(1), f)
print('SQL files and the files they use:')
for f in files:
    used = set(re.findall(r'owsync\.(\w+)', code[f]))
    used |= set(re.findall(r'owsync\.(\w+)\s*\((?!\))', strings[f]))
    used |= set(re.findall(r'(?i)(?:FROM|JOIN|INTO|UPDATE|TABLE|::)\s*owsync\.(\w+)', strings[f]))
    by_file = {}
    for obj in used:
        d = defined.get(obj)
        if d and d != f:
            by_file.setdefault(d, set()).add(obj)
    print(f'  {name(f):20s} {", ".join(name(d)[:2] for d in sorted(by_file)) or "-"}')
    for d in sorted(by_file):
        if d > f:
            breaches.append(f'{name(f)} uses {", ".join(sorted(by_file[d]))} of {name(d)}, a file above it')

# 2. routine length
lens = []
for f in files:
    lines = open(f).read().split('\n')
    i = 0
    while i < len(lines):
        m = re.match(r'CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE)\s+owsync\.(\w+)', lines[i])
        if m:
            j, atomic = i, False
            while j < len(lines):
                atomic = atomic or re.match(r'\s*BEGIN\s+ATOMIC', lines[j]) is not None
                if atomic and lines[j].startswith('END;'):
                    break
                if not atomic and lines[j].rstrip().endswith(';') and ('$$' in lines[j] or 'LANGUAGE C' in lines[j]):
                    break
                j += 1
            lens.append((j - i + 1, m.group(1), name(f)))
            i = j
        i += 1
lens.sort(reverse=True)
print('longest SQL routines (lines):', ', '.join(f'{n} {r} ({f})' for n, r, f in lens[:5]))
breaches += [f'{r} ({f}) has {n} lines, more than {MAX_LINES}' for n, r, f in lens if n > MAX_LINES]

# 3. C call graph
objs = sorted(glob.glob(os.path.join(repo, 'src/*.o')))
if objs:
    def nm(*args):
        return subprocess.run(['nm', *args], capture_output=True, text=True, check=True).stdout.split('\n')
    owner = {}
    for o in objs:
        for line in nm('--defined-only', '-g', o):
            parts = line.split()
            if len(parts) == 3 and parts[1] == 'T':
                owner[parts[2]] = name(o)[:-2] + '.c'
    edges = {}
    for o in objs:
        c = name(o)[:-2] + '.c'
        for line in nm('-u', o):
            parts = line.split()
            if parts and owner.get(parts[-1], c) != c:
                edges.setdefault(c, set()).add(owner[parts[-1]])
    print('C files and the files they call:')
    for c in sorted(edges):
        print(f'  {c:14s} {", ".join(sorted(edges[c]))}')
    state = {}

    def visit(c, path):
        if state.get(c) == 'done':
            return
        if state.get(c) == 'open':
            breaches.append('C files call each other in a cycle: ' + ' -> '.join(path[path.index(c):] + [c]))
            return
        state[c] = 'open'
        for d in sorted(edges.get(c, ())):
            visit(d, path + [c])
        state[c] = 'done'
    for c in sorted(edges):
        visit(c, [])
else:
    print('C call graph: no src/*.o (build first)')

for b in breaches:
    print('BREACH:', b)
print('structure:', 'ok' if not breaches else f'{len(breaches)} breaches')
sys.exit(1 if breaches else 0)
