#!/usr/bin/env python3
"""Timing probes for bench/tui.sh: watch a tmux pane and time what the user would see.

Owns only measurement (launching a pane, polling `tmux capture-pane`, reading
/proc/PID/stat); it must not interpret results against targets (tui.sh prints the table).
Every time is wall clock from just before the triggering tmux command to the first
capture that shows the expected screen, so it includes one tmux round trip; the poll
interval (one `capture-pane` call, a fork and exec) is printed as the resolution.

  first SESSION COLSxROWS REGEX TIMEOUT -- CMD...
      start CMD in a new detached tmux session of that size; wait until the plain
      capture matches REGEX (multi-line). Prints `first=S polls=N poll_ms=M pid=P cpu=C`,
      C being the CPU seconds (user+system, all threads) the pane's process had used by then.
  keys SESSION COUNT TIMEOUT KIND
      press keys COUNT times, each time waiting for the screen to answer, with a random
      0.3-0.8 s gap between presses. KIND `select` alternates j/k and waits for the
      highlighted row (the selection's background, SGR 48;5;238 of the dark theme) to
      move by one line; KIND `sort` presses r and waits for the footer's sort arrow to
      flip (this includes re-sorting the whole table); KIND `group` first presses 5
      and times the Top screen's appearance (`open_ms=`, its first pass over the table),
      then presses b and waits for the group column's title to name the next key. Prints one `lat_ms=` per press,
      then `poll_ms=` and `missed=` (presses not answered within TIMEOUT).
  steady SESSION PID SECS POLL_S [MARK [LONG_S]]
      sample utime+stime of PID over SECS (as % of one core) and poll the plain capture
      every POLL_S to time screen changes. Prints `cpu_pct=… changes=N gap_s=… marks=M`,
      M counting the times the regex MARK appeared (e.g. ctscope's `dumping…` marker of
      a background re-dump). With LONG_S, keeps going to LONG_S and also prints
      `cpu_long=… long_s=… long_marks=…` over the whole longer window.
  grab SESSION REGEX
      print the first group of REGEX in the current plain capture (e.g. the ev/s figure).
"""
import os
import random
import re
import subprocess
import sys
import time


# A private tmux server (`tmux -L NAME`) when BENCH_TMUX is set, so the benchmark neither
# sees nor disturbs anyone else's sessions.
TMUX = ["tmux", "-L", os.environ["BENCH_TMUX"]] if os.environ.get("BENCH_TMUX") else ["tmux"]


def capture(session, escapes=False):
    args = [*TMUX, "capture-pane", "-p", "-t", session]
    if escapes:
        args.append("-e")
    r = subprocess.run(args, capture_output=True, text=True)
    return r.stdout


def tmux(*args):
    subprocess.run([*TMUX, *args], check=True, capture_output=True)


def cpu_ticks(pid):
    """utime + stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime is field 14 → rest[11], stime → rest[12].
    return int(rest[11]) + int(rest[12])


def pane_pid(session):
    r = subprocess.run([*TMUX, "display", "-p", "-t", session, "#{pane_pid}"],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip())


def first(session, size, regex, timeout, cmd):
    cols, rows = size.split("x")
    pat = re.compile(regex, re.M)
    t0 = time.monotonic()
    tmux("new-session", "-d", "-s", session, "-x", cols, "-y", rows, " ".join(cmd))
    polls = 0
    while True:
        polls += 1
        screen = capture(session)
        now = time.monotonic()
        if pat.search(screen):
            break
        if now - t0 > timeout:
            print(f"first=timeout polls={polls}")
            sys.stderr.write(screen)
            return 1
        time.sleep(0.002)
    el = now - t0
    pid = pane_pid(session)
    cpu = cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")
    print(f"first={el:.3f} polls={polls} poll_ms={1000 * el / polls:.1f} pid={pid} cpu={cpu:.2f}")
    return 0


SEL = "48;5;238"
ARROW = re.compile(r"sort \S*?([▲▼])")


def selected_line(screen):
    for i, line in enumerate(screen.splitlines()):
        if SEL in line:
            return i
    return None


def arrow(screen):
    m = None
    for m in ARROW.finditer(screen):
        pass
    return m.group(1) if m else None


GROUP = re.compile(r"^(src|dst|dport|src-net|zone|mark|helper|state|nat)[▲▼]? +Flows", re.M)


def group(screen):
    m = GROUP.search(screen)
    return m.group(1) if m else None


def keys(session, count, timeout, kind):
    rng = random.Random(1)
    polls, spent, missed = 0, 0.0, 0
    if kind == "group":
        # Open Top (its first pass over the whole table) and time it, then `b` regroups.
        t0 = time.monotonic()
        tmux("send-keys", "-t", session, "5")
        while group(capture(session)) is None:
            if time.monotonic() - t0 > timeout:
                print("error: the Top screen did not appear", file=sys.stderr)
                return 1
        print(f"open_ms={1000 * (time.monotonic() - t0):.1f}")
        time.sleep(0.5)
    if kind == "select":
        tmux("send-keys", "-t", session, "g")
        time.sleep(0.5)
    for i in range(count):
        if kind == "select":
            key = "j" if i % 2 == 0 else "k"
            before = selected_line(capture(session, True))
            if before is None:
                print("error: no highlighted row on screen", file=sys.stderr)
                return 1
            want = before + (1 if key == "j" else -1)
            done = lambda s: selected_line(s) == want  # noqa: E731
            esc = True
        elif kind == "group":
            key = "b"
            before = group(capture(session))
            done = lambda s: group(s) not in (None, before)  # noqa: E731
            esc = False
        else:
            key = "r"
            before = arrow(capture(session))
            done = lambda s: arrow(s) not in (None, before)  # noqa: E731
            esc = False
        t0 = time.monotonic()
        tmux("send-keys", "-t", session, key)
        n = 0
        while True:
            n += 1
            s = capture(session, esc)
            now = time.monotonic()
            if done(s):
                print(f"lat_ms={1000 * (now - t0):.1f}")
                break
            if now - t0 > timeout:
                missed += 1
                break
        polls += n
        spent += now - t0
        time.sleep(rng.uniform(0.3, 0.8))
    print(f"poll_ms={1000 * spent / max(polls, 1):.1f} missed={missed}")
    return 0


def steady(session, pid, secs, poll, mark, long):
    hz = os.sysconf("SC_CLK_TCK")
    pat = re.compile(mark) if mark else None
    c0, t0 = cpu_ticks(pid), time.monotonic()
    last, changes, marks, marked = capture(session), [], 0, False
    short = None
    while time.monotonic() - t0 < max(secs, long):
        time.sleep(poll)
        if short is None and time.monotonic() - t0 >= secs:
            short = (cpu_ticks(pid), time.monotonic(), marks)
        s = capture(session)
        if s != last:
            changes.append(time.monotonic() - t0)
            last = s
        now_marked = bool(pat and pat.search(s))
        marks += now_marked and not marked
        marked = now_marked
    c1, t1 = cpu_ticks(pid), time.monotonic()
    c_s, t_s, m_s = short or (c1, t1, marks)
    pct = 100.0 * (c_s - c0) / hz / (t_s - t0)
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    gap = f"{sorted(gaps)[len(gaps) // 2]:.1f}" if gaps else "-"
    print(f"cpu_pct={pct:.1f} window_s={t_s - t0:.1f} changes={len(changes)} gap_s={gap} "
          f"marks={m_s}")
    if long > secs:
        pct = 100.0 * (c1 - c0) / hz / (t1 - t0)
        print(f"long cpu_long={pct:.1f} long_s={t1 - t0:.1f} long_marks={marks}")
    return 0


def grab(session, regex):
    m = re.search(regex, capture(session), re.M)
    print(m.group(1) if m else "?")
    return 0


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "first" and "--" in argv:
        i = argv.index("--")
        s, size, regex, timeout = argv[2:6]
        return first(s, size, regex, float(timeout), argv[i + 1:])
    if cmd == "keys" and len(argv) == 6:
        return keys(argv[2], int(argv[3]), float(argv[4]), argv[5])
    if cmd == "steady" and len(argv) in (6, 7, 8):
        mark = argv[6] if len(argv) >= 7 and argv[6] else None
        long = float(argv[7]) if len(argv) == 8 else 0.0
        return steady(argv[2], int(argv[3]), float(argv[4]), float(argv[5]), mark, long)
    if cmd == "grab" and len(argv) == 4:
        return grab(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
