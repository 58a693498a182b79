#!/usr/bin/env python3
"""STYLE.md habits 1 and 2, checked: includes in arenas/ point only down (or
sideways within a layer), arenas/ never includes a front end (src/ or the public
include/ headers), and only arenas/platform/ calls the OS memory syscalls.

Usage: layering_test.py SOURCE_ROOT. Exit status 0 when the tree keeps the rules.
"""
import os
import re
import sys

# arenas/, bottom-up: read from the table in arenas/README.md, the one place
# the order is written (rows "| N name | `file`, `a.hpp/.cpp` | owns |"). A
# file may include files of its own layer and of layers below. Every file of
# arenas/ must be listed there: a new file needs a place in the order.
def read_layers(root):
    layers = []
    with open(os.path.join(root, 'arenas', 'README.md'), encoding='utf-8') as readme:
        for line in readme:
            cells = [cell.strip() for cell in line.strip().strip('|').split('|')]
            if len(cells) < 2 or not re.match(r'^\d+ ', cells[0]):
                continue
            names = []
            for token in re.findall(r'`([^`]+)`', cells[1]):
                if '/.' in token:   # a.hpp/.cpp: both
                    first, second = token.split('/.')
                    names += [first, first.rsplit('.', 1)[0] + '.' + second]
                else:
                    names.append(token)
            layers.append(names)
    return layers


LAYERS = []
LAYER_OF = {}

SOURCE_SUFFIXES = ('.hpp', '.cpp', '.h', '.c', '.cc', '.hh', '.inc')
OS_CALL = re.compile(r'\b(mmap|mmap64|munmap|madvise|mprotect|mremap|syscall)\s*\(')
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]', re.M)


def strip_comments_and_strings(text):
    """Blank out comments and string/char literals, keeping line numbers."""
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)
    return pattern.sub(lambda m: re.sub(r'[^\n]', ' ', m.group(0)), text)


def sources(root, folder):
    for directory, _, files in os.walk(os.path.join(root, folder)):
        for name in sorted(files):
            if name.endswith(SOURCE_SUFFIXES):
                path = os.path.join(directory, name)
                yield os.path.relpath(path, root), path


def resolve(root, including_file, target):
    """Where a quoted include lands: the file's folder, then the build's include
    folders (arenas/, include/), then src/ (as a front-end file would see it)."""
    candidates = [os.path.dirname(including_file)] + [os.path.join(root, d) for d in ('arenas', 'include', 'src')]
    for folder in candidates:
        path = os.path.normpath(os.path.join(folder, target))
        if os.path.isfile(path):
            return os.path.relpath(path, root)
    return None


def check(root):
    LAYERS[:] = read_layers(root)
    LAYER_OF.clear()
    LAYER_OF.update({name: level for level, names in enumerate(LAYERS) for name in names})
    if not LAYERS:
        return ['arenas/README.md: no layer table found']
    problems = []
    arenas = os.path.join(root, 'arenas')
    for relative, path in sources(root, 'arenas'):
        name = os.path.relpath(path, arenas)
        if name not in LAYER_OF:
            problems.append(f'{relative}: not in the layer table of arenas/README.md; give it a layer there')
            continue
        with open(path, encoding='utf-8') as f:
            text = f.read()
        for match in INCLUDE.finditer(text):
            line = text.count('\n', 0, match.start()) + 1
            where = f'{relative}:{line}'
            target = match.group(2)
            if match.group(1) == '<':
                if target.startswith('pcmalloc/'):
                    problems.append(f'{where}: includes the public front-end header <{target}>')
                continue
            landed = resolve(root, path, target)
            if landed is None:
                problems.append(f'{where}: "{target}" not found')
            elif not landed.startswith('arenas' + os.sep):
                problems.append(f'{where}: includes {landed}, outside the core')
            else:
                included = os.path.relpath(os.path.join(root, landed), arenas)
                if included not in LAYER_OF:
                    problems.append(f'{where}: includes {included}, which has no layer')
                elif LAYER_OF[included] > LAYER_OF[name]:
                    problems.append(f'{where}: includes {included} (layer {LAYER_OF[included]}) '
                                    f'from layer {LAYER_OF[name]}: an upward include')

    # One door to the OS: memory syscalls only in arenas/platform/.
    for folder in ('arenas', 'src', 'include'):
        for relative, path in sources(root, folder):
            if relative.startswith(os.path.join('arenas', 'platform') + os.sep):
                continue
            with open(path, encoding='utf-8') as f:
                text = strip_comments_and_strings(f.read())
            for match in OS_CALL.finditer(text):
                line = text.count('\n', 0, match.start()) + 1
                problems.append(f'{relative}:{line}: calls {match.group(1)}() outside arenas/platform/')
    return problems


def self_test():
    """The checks themselves: comments and strings do not count, calls do."""
    sample = strip_comments_and_strings('// mmap(\n/* munmap( */ const char* s = "madvise(";\nx = mprotect(p, n, 0);\n')
    found = [m.group(1) for m in OS_CALL.finditer(sample)]
    assert found == ['mprotect'], found
    assert OS_CALL.search('  ::syscall (SYS_futex') and OS_CALL.search('mremap(p')
    assert not OS_CALL.search('os::map(size)') and not OS_CALL.search('sys_mmap(x)')
    assert [m.group(2) for m in INCLUDE.finditer('#include "a.hpp"\n# include <b>\n')] == ['a.hpp', 'b']


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..'))
    self_test()
    problems = check(root)
    for level, names in enumerate(LAYERS):
        print(f'layer {level}: {" ".join(names)}')
    for p in problems:
        print('FAIL', p)
    print(f'{len(problems)} problem(s)')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
