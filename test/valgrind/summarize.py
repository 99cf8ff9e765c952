#!/usr/bin/env python3
"""Summarize the valgrind memcheck logs written by test/valgrind/run.sh (one per process).

    python3 test/valgrind/summarize.py LOGDIR SRCDIR

The logs are valgrind's text output with -v, --gen-suppressions=all and --fullpath-after=
(source paths in full).  A frame is owsync's when its source file is under SRCDIR (the
repository's src/, compiled with debug information) or its object is owsync_fdw.so.  An
error counts as owsync's when any of its stacks (where it happened, and where the memory
involved was allocated or freed) has such a frame: that includes errors inside SQLite or
PostgreSQL code called by owsync.  Every such error is printed in full.  Other errors are
listed by kind and top frames, and the suppressions valgrind generated for them are written to
LOGDIR/new-suppressions.txt, to review before adding any to postgres.supp.
The last line is the summary; the exit status is 1 when owsync's code has any error.
"""
import collections
import glob
import os
import re
import sys

LINE = re.compile(r"^==(\d+)== ?(.*)$")
USED_SUPP = re.compile(r"^--\d+-- used_suppression:\s+(\d+) (\S+) \S+:\d+")
SUMMARY = re.compile(r"^ERROR SUMMARY: (\d+) errors from \d+ contexts \(suppressed: (\d+) from \d+\)")
CONTEXT = re.compile(r"^(\d+) errors in context \d+ of \d+:$")
FRAME = re.compile(r"^\s+(?:at|by) 0x[0-9A-F]+: (.*)$")
LEAK = re.compile(r"are definitely lost in loss record")
WARNING = re.compile(r"^(Warning|WARNING):")     # valgrind's own warnings: not errors


class Log:
    def __init__(self, path):
        self.path = path
        self.blocks = []        # (lines, suppression text or None), in the order written
        self.listed = []        # (count, lines): -v's end-of-run list of error contexts
        self.used_supp = collections.Counter()
        self.total = self.suppressed = None
        block, supp, in_supp = [], [], False
        for raw in open(path, encoding="utf-8", errors="replace").read().splitlines():
            m = LINE.match(raw)
            if m:
                text = m.group(2)
                s = SUMMARY.match(text)
                if s:
                    self.total, self.suppressed = int(s.group(1)), int(s.group(2))
                # a report starts with an unindented line and goes on with indented ones
                # ("N errors in context" heads the report that follows it)
                starts = text.strip() == "" or not text[0].isspace()
                if starts and not (len(block) == 1 and CONTEXT.match(block[0])):
                    if block:
                        self.blocks.append([block, None])
                    block = []
                if text.strip() != "":
                    block.append(text)
                continue
            u = USED_SUPP.match(raw)
            if u:
                self.used_supp[u.group(2)] += int(u.group(1))
            elif raw == "{":                  # a generated suppression, after its error
                in_supp, supp = True, [raw]
                if block:
                    self.blocks.append([block, None])
                    block = []
            elif in_supp:
                supp.append(raw)
                if raw == "}":
                    in_supp = False
                    if self.blocks:
                        self.blocks[-1][1] = "\n".join(supp)
        if block:
            self.blocks.append([block, None])
        for lines, _ in self.blocks:
            c = CONTEXT.match(lines[0])
            if c:
                self.listed.append((int(c.group(1)), lines[1:]))

    @property
    def finished(self):
        return self.total is not None

    def errors(self):
        """(count, lines, suppression) of each error context of this process."""
        out = []
        for lines, supp in self.blocks:
            if (CONTEXT.match(lines[0]) or WARNING.match(lines[0]) or
                    not any(FRAME.match(x) for x in lines)):
                continue
            if LEAK.search(lines[0]):
                out.append((1, lines, supp))
            elif not self.finished:           # killed: no end-of-run list, count what is there
                out.append((1, lines, supp))
            else:
                out.append((None, lines, supp))   # counted from the list below
        if self.finished:
            counts = {tuple(lines): n for n, lines in self.listed}
            out = [(n if n is not None else counts.get(tuple(lines), 1), lines, supp)
                   for n, lines, supp in out]
        return out


def is_owsync_frame(frame, srcdir):
    return (srcdir + os.sep) in frame or "owsync_fdw.so" in frame


def short_frame(frame):
    fn, _, where = frame.partition(" (")
    where = where.rstrip(")")
    return f"{fn} ({os.path.basename(where.replace('in ', '', 1))})"


def main():
    logdir = sys.argv[1]
    srcdir = os.path.realpath(sys.argv[2])
    paths = sorted(glob.glob(os.path.join(logdir, "*.log")), key=os.path.getmtime)
    own, other = [], collections.Counter()
    other_example, new_supp = {}, {}
    used_supp = collections.Counter()
    unfinished, total, suppressed = [], 0, 0
    for path in paths:
        log = Log(path)
        used_supp.update(log.used_supp)
        if not log.finished:
            if log.blocks:
                unfinished.append(os.path.basename(path))
        else:
            total += log.total
            suppressed += log.suppressed
        for n, lines, supp in log.errors():
            frames = [FRAME.match(x).group(1) for x in lines if FRAME.match(x)]
            if any(is_owsync_frame(f, srcdir) for f in frames):
                own.append((path, n, lines))
                continue
            kind = re.sub(r"0x[0-9A-F]+|\d+", "N", lines[0])
            top = []
            for x in lines[1:]:
                f = FRAME.match(x)
                if not f:
                    break
                top.append(short_frame(f.group(1)))
            key = (kind, tuple(top[:4]))
            other[key] += n
            other_example.setdefault(key, path)
            if supp:
                new_supp.setdefault(supp, None)

    for path, n, lines in own:
        print(f"\n*** owsync error ({n}x) in {path}:")
        for x in lines:
            f = FRAME.match(x)
            mark = ">" if f and is_owsync_frame(f.group(1), srcdir) else " "
            print(f"  {mark} {x}")
    if other:
        print("\nerrors outside owsync's code (count, kind, top frames, one log):")
        for (kind, top), n in other.most_common():
            print(f"  {n:6d}  {kind}: {' < '.join(top)}  [{os.path.basename(other_example[(kind, top)])}]")
        with open(os.path.join(logdir, "new-suppressions.txt"), "w") as out:
            out.write("\n".join(new_supp) + "\n")
        print(f"  suppressions generated for them: {os.path.join(logdir, 'new-suppressions.txt')}")
    if used_supp:
        print("\nsuppressions used (count, name):")
        for name, n in used_supp.most_common():
            print(f"  {n:6d}  {name}")
    if unfinished:
        print(f"\n{len(unfinished)} log(s) without an end (process killed?): {' '.join(unfinished[:10])}")

    n_own = sum(n for _, n, _ in own)
    n_other = sum(other.values())
    print(f"\nvalgrind: {n_own} errors in owsync's code, {n_other} other errors, "
          f"{suppressed} suppressed, in {len(paths)} processes")
    if total != n_own + n_other and not unfinished:
        print(f"(valgrind's own ERROR SUMMARY lines add up to {total} errors)")
    return 1 if n_own or not paths else 0


if __name__ == "__main__":
    sys.exit(main())
