#!/usr/bin/env python3
"""Turn a `tmux capture-pane -e -p` dump (text with ANSI SGR colours) into an SVG.

Part of screenshots/make.sh: the screenshots in the README are the real terminal output of
`ctscope --replay` captured from tmux, not drawings. Handles the SGR codes ratatui and
crossterm emit: reset, bold, dim, italic, underline, reverse, 16 colours, 256 colours and
24-bit colour, for foreground and background. Usage: ansi2svg.py IN.ansi OUT.svg COLS ROWS
"""
import html
import re
import sys

CW, CH = 8.4, 17  # cell size in px for a 14px monospace font
PALETTE16 = [
    "#1c1c1c", "#cd3131", "#0dbc79", "#e5e510", "#2472c8", "#bc3fbc", "#11a8cd", "#cccccc",
    "#666666", "#f14c4c", "#23d18b", "#f5f543", "#3b8eea", "#d670d6", "#29b8db", "#ffffff",
]
DEFAULT_FG, DEFAULT_BG = "#d4d4d4", "#101010"


def xterm256(n):
    if n < 16:
        return PALETTE16[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return "#%02x%02x%02x" % (steps[n // 36], steps[(n // 6) % 6], steps[n % 6])
    v = 8 + (n - 232) * 10
    return "#%02x%02x%02x" % (v, v, v)


def parse(text, cols, rows):
    """Return a grid of (char, fg, bg, bold, underline) cells."""
    grid = [[(" ", None, None, False, False) for _ in range(cols)] for _ in range(rows)]
    st = {"fg": None, "bg": None, "bold": False, "ul": False, "rev": False}
    for y, line in enumerate(text.split("\n")[:rows]):
        x = 0
        for tok in re.split(r"(\x1b\[[0-9;:]*m)", line):
            if tok.startswith("\x1b["):
                codes = [int(c) if c else 0 for c in re.split("[;:]", tok[2:-1])] or [0]
                i = 0
                while i < len(codes):
                    c = codes[i]
                    if c == 0:
                        st = {"fg": None, "bg": None, "bold": False, "ul": False, "rev": False}
                    elif c == 1:
                        st["bold"] = True
                    elif c == 4:
                        st["ul"] = True
                    elif c == 7:
                        st["rev"] = True
                    elif c == 22:
                        st["bold"] = False
                    elif c == 24:
                        st["ul"] = False
                    elif c == 27:
                        st["rev"] = False
                    elif 30 <= c <= 37:
                        st["fg"] = PALETTE16[c - 30]
                    elif 90 <= c <= 97:
                        st["fg"] = PALETTE16[c - 90 + 8]
                    elif 40 <= c <= 47:
                        st["bg"] = PALETTE16[c - 40]
                    elif 100 <= c <= 107:
                        st["bg"] = PALETTE16[c - 100 + 8]
                    elif c == 39:
                        st["fg"] = None
                    elif c == 49:
                        st["bg"] = None
                    elif c in (38, 48) and i + 1 < len(codes):
                        key = "fg" if c == 38 else "bg"
                        if codes[i + 1] == 5 and i + 2 < len(codes):
                            st[key] = xterm256(codes[i + 2])
                            i += 2
                        elif codes[i + 1] == 2 and i + 4 < len(codes):
                            st[key] = "#%02x%02x%02x" % tuple(codes[i + 2:i + 5])
                            i += 4
                    i += 1
                continue
            for ch in tok:
                if x >= cols:
                    break
                fg, bg = st["fg"], st["bg"]
                if st["rev"]:
                    fg, bg = (bg or DEFAULT_BG), (fg or DEFAULT_FG)
                grid[y][x] = (ch, fg, bg, st["bold"], st["ul"])
                x += 1
    return grid


def render(grid, cols, rows):
    w, h = cols * CW, rows * CH
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" '
        f'viewBox="0 0 {w:.1f} {h}">',
        f'<rect width="100%" height="100%" fill="{DEFAULT_BG}"/>',
    ]
    for y, row in enumerate(grid):
        for x, (_, _, bg, _, _) in enumerate(row):
            if bg:
                out.append(
                    f'<rect x="{x * CW:.1f}" y="{y * CH}" width="{CW + 0.1:.1f}" '
                    f'height="{CH}" fill="{bg}"/>'
                )
    out.append('<g font-family="DejaVu Sans Mono, monospace" font-size="14">')
    for y, row in enumerate(grid):
        x = 0
        while x < cols:
            ch, fg, _, bold, ul = row[x]
            if ch == " ":
                x += 1
                continue
            # Group a run of cells with the same style into one <text>.
            run, start = [], x
            while x < cols and row[x][1:] == (fg, row[x][2], bold, ul) and row[x][0] != " ":
                run.append(row[x][0])
                x += 1
            attrs = f'fill="{fg or DEFAULT_FG}"'
            if bold:
                attrs += ' font-weight="bold"'
            if ul:
                attrs += ' text-decoration="underline"'
            out.append(
                f'<text x="{start * CW:.1f}" y="{y * CH + 13}" {attrs} '
                f'textLength="{len(run) * CW:.1f}" xml:space="preserve">'
                f'{html.escape("".join(run))}</text>'
            )
    out.append("</g></svg>")
    return "\n".join(out)


def main():
    src, dst, cols, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    with open(src, encoding="utf-8", errors="replace") as f:
        text = f.read()
    with open(dst, "w", encoding="utf-8") as f:
        f.write(render(parse(text, cols, rows), cols, rows))


if __name__ == "__main__":
    main()
