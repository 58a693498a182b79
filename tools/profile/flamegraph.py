#!/usr/bin/env python3
"""A flame graph (SVG) from folded stacks: one line per stack, frames from the
root to the leaf separated by ';', then a space and a byte count (the
PREFIX.*.folded files of a pcmalloc heap profile).

Frames are sized by bytes; hovering shows a frame's bytes and share (<title>);
clicking zooms to a frame (a small embedded script), clicking the background
or "reset zoom" goes back. The SVG is self-contained.

Usage: flamegraph.py FOLDED OUT.svg [--title TEXT]
"""
import argparse
import html
import zlib

WIDTH = 1200
ROW = 17
PAD_TOP = 44
PAD_SIDE = 10

SCRIPT = """
<![CDATA[
function zoom(node) {
  var x = parseFloat(node.getAttribute('data-x')), w = parseFloat(node.getAttribute('data-w'));
  var depth = parseInt(node.getAttribute('data-d'));
  var frames = document.getElementsByClassName('f');
  for (var i = 0; i < frames.length; i++) {
    var f = frames[i];
    var fx = parseFloat(f.getAttribute('data-x')), fw = parseFloat(f.getAttribute('data-w'));
    var fd = parseInt(f.getAttribute('data-d'));
    var inside = fx >= x - 1e-12 && fx + fw <= x + w + 1e-12;
    var above = fd < depth && fx <= x + 1e-12 && fx + fw >= x + w - 1e-12;
    if (!inside && !above) { f.style.display = 'none'; continue; }
    f.style.display = '';
    var nx = inside ? (fx - x) / w : 0, nw = inside ? fw / w : 1;
    place(f, nx, nw);
  }
  document.getElementById('reset').style.display = '';
}
function place(f, nx, nw) {
  var full = %(full)f, left = %(left)f;
  var r = f.getElementsByTagName('rect')[0], t = f.getElementsByTagName('text')[0];
  r.setAttribute('x', left + nx * full);
  r.setAttribute('width', Math.max(nw * full - 0.5, 0.1));
  t.setAttribute('x', left + nx * full + 3);
  var chars = Math.floor((nw * full - 6) / 7);
  var name = f.getAttribute('data-n');
  t.textContent = chars < 3 ? '' : (name.length <= chars ? name : name.substring(0, chars - 2) + '..');
}
function reset() {
  var frames = document.getElementsByClassName('f');
  for (var i = 0; i < frames.length; i++) {
    var f = frames[i];
    f.style.display = '';
    place(f, parseFloat(f.getAttribute('data-x')), parseFloat(f.getAttribute('data-w')));
  }
  document.getElementById('reset').style.display = 'none';
}
]]>
"""


def read_folded(path):
    root = {'children': {}, 'value': 0}
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line.strip():
                continue
            stack, _, count = line.rpartition(' ')
            try:
                value = int(count)
            except ValueError:
                continue
            node = root
            node['value'] += value
            for frame in stack.split(';'):
                node = node['children'].setdefault(frame, {'children': {}, 'value': 0})
                node['value'] += value
    return root


def colour(name):
    h = zlib.crc32(name.encode())
    return 'rgb(%d,%d,%d)' % (205 + h % 50, 80 + (h >> 8) % 130, (h >> 16) % 60)


def human(n):
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(n) < 1024 or unit == 'TiB':
            return ('%d %s' % (n, unit)) if unit == 'B' else ('%.1f %s' % (n, unit))
        n /= 1024.0


def layout(root):
    """(name, depth, x fraction, width fraction, bytes) for every frame, root first."""
    out = []
    total = root['value'] or 1

    def walk(node, depth, x):
        for name, child in sorted(node['children'].items()):
            w = child['value'] / total
            out.append((name, depth, x, w, child['value']))
            walk(child, depth + 1, x)
            x += w
    walk(root, 0, 0.0)
    return out, total


def render(root, title):
    frames, total = layout(root)
    depth = max((d for _, d, _, _, _ in frames), default=0) + 1
    height = PAD_TOP + depth * ROW + 30
    full = WIDTH - 2 * PAD_SIDE
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="12">',
        '<script type="text/ecmascript">' + SCRIPT % {'full': full, 'left': PAD_SIDE} + '</script>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#f8f8f0" onclick="reset()"/>',
        f'<text x="{WIDTH / 2}" y="20" text-anchor="middle" font-size="16">{html.escape(title)}</text>',
        f'<text x="{PAD_SIDE}" y="36" font-size="12">total {html.escape(human(total))} ({total} bytes); '
        'hover for numbers, click to zoom</text>',
        f'<text id="reset" x="{WIDTH - PAD_SIDE}" y="36" text-anchor="end" style="display:none; cursor:pointer" '
        'onclick="reset()">reset zoom</text>',
    ]
    for name, d, x, w, value in frames:
        y = height - 30 - (d + 1) * ROW
        px = PAD_SIDE + x * full
        pw = max(w * full - 0.5, 0.1)
        chars = int((w * full - 6) / 7)
        label = '' if chars < 3 else (name if len(name) <= chars else name[:chars - 2] + '..')
        share = 100.0 * value / total
        parts.append(
            f'<g class="f" data-n="{html.escape(name, quote=True)}" data-x="{x:.9f}" data-w="{w:.9f}" data-d="{d}" '
            f'onclick="zoom(this)" style="cursor:pointer">'
            f'<title>{html.escape(name)}: {html.escape(human(value))} ({value} bytes, {share:.2f}%)</title>'
            f'<rect x="{px:.2f}" y="{y}" width="{pw:.2f}" height="{ROW - 1}" fill="{colour(name)}" rx="2"/>'
            f'<text x="{px + 3:.2f}" y="{y + ROW - 5}">{html.escape(label)}</text></g>')
    parts.append('</svg>')
    return '\n'.join(parts) + '\n'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('folded')
    parser.add_argument('out')
    parser.add_argument('--title', default='pcmalloc heap profile')
    args = parser.parse_args()
    root = read_folded(args.folded)
    with open(args.out, 'w', encoding='utf-8') as f:
        f.write(render(root, args.title))


if __name__ == '__main__':
    main()
