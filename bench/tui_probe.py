#!/usr/bin/env python3
"""Timing probes for bench/tui.sh: watch a tmux pane and time what the user would see.

Owns only measurement (launching a pane, polling `tmux capture-pane`, reading
/proc/PID/stat); it must not interpret results against targets (tui.sh prints the table).
Every time is wall clock from just before the triggering tmux command to the first
capture that shows the expected screen, so it includes one tmux round trip; the poll
interval is printed as the resolution. `first` captures through one control-mode client
(`Control`); the other probes start a `tmux capture-pane` process per capture.

  first SESSION COLSxROWS REGEX TIMEOUT [EARLY [FRAME_LOG]] -- CMD...
      start CMD in a new detached tmux session of that size; wait until the plain
      capture matches REGEX (multi-line). Prints `first=S polls=N poll_ms=M pid=P cpu=C`,
      C being the CPU seconds (user+system, all threads) the pane's process had used by then.
      With EARLY (a regex), also `rows=S`: when the capture first matched EARLY (e.g. the
      first table rows, while the dump still streams).
      With FRAME_LOG (the file CMD writes through CTSCOPE_FRAME_LOG, which has a line per
      frame flushed), the screen is captured once after each frame the log shows (and
      every 50 ms at the least) instead of every few ms, so the probe does not take the
      CPU of the program it times (polling every few ms with a tmux client process per
      capture kept a core ~40% busy); each time is then the flush of the last frame
      before the first capture that matched: the frame that first showed it, or a later
      one if tmux had not yet read it from the pty (never earlier than the truth).
      `window_ms=` says how far back the capture before it lay (the first frame after
      that one is the earliest it could be). Without FRAME_LOG, every 2 ms.
  keys SESSION COUNT TIMEOUT KIND
      press keys COUNT times, each time waiting for the screen to answer, with a random
      0.3-0.8 s gap between presses. KIND `select` alternates j/k and waits for the
      highlighted row (the selection's background, SGR 48;5;238 of the dark theme) to
      move by one line; KIND `sort` presses r and waits for the footer's sort arrow to
      flip and the table's top row to change (the whole table re-sorted and shown);
      KIND `group` first presses 5 and times the Top screen's appearance (`open_ms=`, its
      first pass over the table), then presses b and waits for the group column's title to
      name the next key. Prints one `lat_ms=` per press,
      then `poll_ms=` and `missed=` (presses not answered within TIMEOUT).
  mixed SESSION COUNT TIMEOUT GAP_S [FRAME_LOG]
      press COUNT keys cycling j, k, PgDn, PgUp, Tab, S-Tab (the issue's keypress set),
      GAP_S to 2*GAP_S apart, each written to the tmux server by one control-mode client
      (`Control`, not a `tmux send-keys` process per press). With FRAME_LOG (the file
      named by CTSCOPE_FRAME_LOG, see src/tui/probe.rs) each press is timed from just
      before it is written to the tmux server to the
      flush of the first frame drawn after the app read the key, from the log; prints
      `lat_ms=` (that end-to-end time) and `app_ms=` (read to flush) per press, then
      `source=framelog`. Without a log (a build whose main loop does not call the probe;
      the file stays empty after the first press) it falls back to polling the screen
      until the highlighted row or tab changes, and prints `source=capture poll_ms=`.
      Ends with `missed=` (presses not answered within TIMEOUT).
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


class Control:
    """One tmux control-mode client (`tmux -C`) for keys and captures, so a timed press or
    a capture costs one line written to the tmux server, not a tmux client process.
    Forking and starting a tmux client took ~3 ms on an idle machine and far more, now and
    then, beside a churn generator on two cores; none of that is on the path of a key an
    admin types over SSH (sshd writes it to the pty). While a dump is timed, a capture
    every 50 ms by a new process each time kept the timed program's dump ~10-25% slower
    than with no probe at all (its receiving thread's own CPU time, against the bare
    dump's), on the cores being timed. The client sits in a session of its own (a control
    client attached to the timed session could change its size); each command returns
    once the server has answered."""

    def __init__(self):
        self.session = f"probe-ctl-{os.getpid()}"
        self.p = subprocess.Popen([*TMUX, "-C", "new-session", "-s", self.session,
                                   "sleep", "86400"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  bufsize=1)
        # The client's own `new-session` answers first; commands sent before it has
        # attached could be refused ("no current client").
        self.answer("new-session")

    def answer(self, what):
        """Read up to the end of the next command's answer (notifications in between are
        skipped) and return its lines; raise with tmux's words if it was an error."""
        said = []
        while True:
            out = self.p.stdout.readline()
            if not out:
                raise RuntimeError(f"tmux control client ended at: {what}")
            if out.startswith("%begin"):
                said = []
            elif out.startswith("%error"):
                raise RuntimeError(f"tmux refused {what}: {' '.join(said).strip()}")
            elif out.startswith("%end"):
                return said
            elif not out.startswith("%"):
                said.append(out)

    def command(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.answer(line)

    def send(self, target, key):
        self.command(f"send-keys -t {target} {key}")

    def capture(self, target):
        """The pane's plain text, as `capture()` gives it. (A pane line that itself began
        with `%` would be taken for a notification: no screen timed here draws one.)"""
        return "".join(self.command(f"capture-pane -p -t {target}"))

    def close(self):
        try:
            self.command(f"kill-session -t {self.session}")
        except (RuntimeError, BrokenPipeError):
            pass
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass
        self.p.wait(timeout=5)


def cpu_ticks(pid):
    """utime + stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime is field 14 → rest[11], stime → rest[12].
    return int(rest[11]) + int(rest[12])


def thread_ticks(pid):
    """utime + stime per thread name of PID (threads of one name summed)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                raw = f.read()
        except OSError:
            continue  # the thread ended
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        rest = raw.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0) + int(rest[11]) + int(rest[12])
    return out


def pane_pid(session):
    r = subprocess.run([*TMUX, "display", "-p", "-t", session, "#{pane_pid}"],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip())


def log_size(path):
    """Bytes in the frame log so far (0 before the program made it)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def frames_flushed(path):
    """Flush times (ns) of the frames in a frame log, in order."""
    try:
        with open(path) as f:
            return [int(ln.split()[2]) for ln in f if ln.startswith("frame ")]
    except FileNotFoundError:
        return []


def first(session, size, regex, timeout, cmd, early=None, frame_log=None):
    cols, rows = size.split("x")
    pat = re.compile(regex, re.M)
    early_pat = re.compile(early, re.M) if early else None
    ctl = Control()
    try:
        return first_with(ctl, session, cols, rows, pat, early_pat, timeout, cmd, frame_log)
    finally:
        ctl.close()


def first_with(ctl, session, cols, rows, pat, early_pat, timeout, cmd, frame_log):
    early_at = None
    # Per match: (capture start ns, previous capture start ns).
    early_caps = None
    t0_ns = time.monotonic_ns()
    t0 = time.monotonic()
    tmux("new-session", "-d", "-s", session, "-x", cols, "-y", rows, " ".join(cmd))
    polls = 0
    prev_ns = t0_ns
    logged = -1
    while True:
        if frame_log:
            # A capture after each frame the program flushed (its log grew), so the frame
            # that first shows the match is the one timed; every 50 ms at the least, in
            # case a frame is not logged.
            waited = 0.0
            while waited < 0.05:
                size = log_size(frame_log)
                if size != logged:
                    logged = size
                    # Time for tmux to read the frame from the pty.
                    time.sleep(0.001)
                    break
                time.sleep(0.002)
                waited += 0.002
        polls += 1
        cap_ns = time.monotonic_ns()
        screen = ctl.capture(session)
        now = time.monotonic()
        if early_pat and early_at is None and early_pat.search(screen):
            early_at = now - t0
            early_caps = (cap_ns, prev_ns)
        if pat.search(screen):
            break
        if now - t0 > timeout:
            print(f"first=timeout polls={polls}")
            sys.stderr.write(screen)
            return 1
        prev_ns = cap_ns
        if not frame_log:
            time.sleep(0.002)
    el = now - t0
    window = ""
    if frame_log:
        flushed = frames_flushed(frame_log)

        def at(caps):
            cap, before = caps
            shown = [f for f in flushed if f <= cap]
            return ((shown[-1] - t0_ns) / 1e9 if shown else None), (cap - before) / 1e6

        t, w = at((cap_ns, prev_ns))
        if t is not None:
            el, window = t, f" window_ms={w:.0f}"
        if early_caps:
            t, _ = at(early_caps)
            if t is not None:
                early_at = t
    pid = pane_pid(session)
    cpu = cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")
    rows_at = f" rows={early_at if early_at is not None else el:.3f}" if early_pat else ""
    print(f"first={el:.3f} polls={polls} poll_ms={1000 * (now - t0) / polls:.1f} pid={pid} "
          f"cpu={cpu:.2f}{rows_at}{window} t0_ns={t0_ns}")
    return 0


SEL = "48;5;238"
ARROW = re.compile(r"sort \S*?([▲▼])")


def selected_line(screen):
    for i, line in enumerate(screen.splitlines()):
        if SEL in line:
            return i
    return None


def top_row(screen):
    """The first row under the flows table's column titles."""
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        if "Proto" in line and i + 1 < len(lines):
            return lines[i + 1]
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


# A Top row: a group's label, then its flow count.
GROUP_ROW = re.compile(r"^\S.*?\s[0-9][0-9,]*\s")


def grouped(screen):
    """The Top grouping shown with its rows: the title changes on `b` at once, and the
    rows of the new grouping follow when its pass is done, so a regroup is applied when
    a row sits under the new title."""
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        m = GROUP.match(line)
        if m:
            rows = i + 1 < len(lines) and GROUP_ROW.match(lines[i + 1])
            return m.group(1) if rows else None
    return None


def keys(session, count, timeout, kind):
    sender = Control()
    try:
        return timed_keys(sender, session, count, timeout, kind)
    finally:
        sender.close()


def timed_keys(sender, session, count, timeout, kind):
    rng = random.Random(1)
    polls, spent, missed = 0, 0.0, 0
    if kind == "group":
        # Open Top (its first pass over the whole table) and time it, then `b` regroups.
        t0 = time.monotonic()
        tmux("send-keys", "-t", session, "5")
        while grouped(capture(session)) is None:
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
            done = lambda s: grouped(s) not in (None, before)  # noqa: E731
            esc = False
        else:
            # The arrow may flip before a worker hands over the re-sorted rows: wait for
            # both, the top row of the table changing too (the selection keeps its entry,
            # so its own row would not tell).
            key = "r"
            scr = capture(session)
            before = (arrow(scr), top_row(scr))
            done = lambda s: arrow(s) not in (None, before[0]) and top_row(s) != before[1]  # noqa: E731
            esc = False
        t0 = time.monotonic()
        sender.send(session, key)
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


MIXED = [("j", "j"), ("k", "k"), ("PgDn", "NPage"), ("PgUp", "PPage"), ("Tab", "Tab"),
         ("S-Tab", "BTab")]


def selected_row(screen):
    """(line number, text) of the highlighted row, or None."""
    for i, line in enumerate(screen.splitlines()):
        if SEL in line:
            return i, re.sub(r"\x1b\[[0-9;]*m", "", line)
    return None


TAB = re.compile(r"48;5;\d+m(\d) [A-Z]")


def screen_state(screen):
    """What a key changes, from a capture with escapes: the highlighted row (j/k, PgDn)
    and the highlighted tab (Tab). Counts elsewhere move with churn and are left out."""
    tab = TAB.search(screen)
    return selected_row(screen), tab.group(1) if tab else None


def log_lines(path, pos):
    """New complete lines of the frame log after byte offset pos, and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(pos)
            data = f.read()
    except FileNotFoundError:
        return [], pos
    end = data.rfind(b"\n") + 1
    return data[:end].decode().splitlines(), pos + end


def mixed(session, count, timeout, gap, frame_log):
    rng = random.Random(2)
    pos = os.path.getsize(frame_log) if frame_log and os.path.exists(frame_log) else 0
    use_log = bool(frame_log)
    polls, spent, missed = 0, 0.0, 0
    tmux("send-keys", "-t", session, "g")
    time.sleep(0.5)
    sender = Control()
    for i in range(count):
        name, key = MIXED[i % len(MIXED)]
        before = None if use_log else screen_state(capture(session, True))
        t0_ns = time.monotonic_ns()
        t0 = time.monotonic()
        sender.send(session, key)
        n = 0
        while True:
            n += 1
            now = time.monotonic()
            if use_log:
                lines, pos = log_lines(frame_log, pos)
                hit = [ln.split() for ln in lines
                       if not ln.startswith("frame ") and int(ln.split()[0]) >= t0_ns]
                if hit:
                    read_ns, flushed_ns = int(hit[0][0]), int(hit[0][1])
                    print(f"lat_ms={(flushed_ns - t0_ns) / 1e6:.2f} "
                          f"app_ms={(flushed_ns - read_ns) / 1e6:.2f} key={name}")
                    break
                if i == 0 and now - t0 > min(timeout, 2.0) and os.path.getsize(frame_log) == 0:
                    # This build does not write the frame log: poll the screen instead.
                    print("note: the frame log stays empty; polling the screen", file=sys.stderr)
                    use_log = False
                    before = None
                    break
                time.sleep(0.001)
            else:
                s = screen_state(capture(session, True))
                if before is None:
                    before = s
                elif s != before:
                    print(f"lat_ms={1000 * (now - t0):.1f} key={name}")
                    break
            if now - t0 > timeout:
                missed += 1
                break
        polls += n
        spent += time.monotonic() - t0
        time.sleep(rng.uniform(gap, 2 * gap))
    sender.close()
    if use_log:
        print(f"source=framelog missed={missed}")
    else:
        print(f"source=capture poll_ms={1000 * spent / max(polls, 1):.1f} missed={missed}")
    return 0


def steady(session, pid, secs, poll, mark, long):
    hz = os.sysconf("SC_CLK_TCK")
    pat = re.compile(mark) if mark else None
    c0, t0 = cpu_ticks(pid), time.monotonic()
    th0 = thread_ticks(pid)
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
    th1 = thread_ticks(pid)
    c_s, t_s, m_s = short or (c1, t1, marks)
    pct = 100.0 * (c_s - c0) / hz / (t_s - t0)
    gaps = [b - a for a, b in zip(changes, changes[1:])]
    gap = f"{sorted(gaps)[len(gaps) // 2]:.1f}" if gaps else "-"
    print(f"cpu_pct={pct:.1f} window_s={t_s - t0:.1f} changes={len(changes)} gap_s={gap} "
          f"marks={m_s}")
    # Where the CPU went, per thread name, over the whole window (threads that ended
    # inside it are missing).
    per = sorted(((th1[n] - th0.get(n, 0), n) for n in th1), reverse=True)
    print("threads " + " ".join(f"{n}={100.0 * d / hz / (t1 - t0):.1f}%" for d, n in per if d > 0))
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
        early = argv[6] if i >= 7 else None
        log = argv[7] if i == 8 and argv[7] else None
        return first(s, size, regex, float(timeout), argv[i + 1:], early, log)
    if cmd == "keys" and len(argv) == 6:
        return keys(argv[2], int(argv[3]), float(argv[4]), argv[5])
    if cmd == "mixed" and len(argv) in (6, 7):
        log = argv[6] if len(argv) == 7 and argv[6] else None
        return mixed(argv[2], int(argv[3]), float(argv[4]), float(argv[5]), log)
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
