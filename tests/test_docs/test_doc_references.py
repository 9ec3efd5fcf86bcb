"""What the documentation points at exists: every relative link (and its ``#anchor``) of
README.md, docs/ and the configs' READMEs, every ``mmmt.<name>`` and ``from mmmt... import``
that they and the docstrings and comments of the code and the configs give, and every
``--option`` that they and the Makefile give a script of tools/ or demo/.

A renamed page, heading, function or command-line option otherwise leaves a dead link, an
ImportError or a command that stops with "unrecognized arguments" for the first user who
pastes it.
"""
import argparse
import glob
import importlib
import os.path as osp
import re
import runpy
import sys
from typing import Dict, Iterator, List, Set, Tuple

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOCS = sorted([osp.join(REPO, 'README.md')] + glob.glob(osp.join(REPO, 'docs', '*.md')) +
              glob.glob(osp.join(REPO, 'configs', '**', 'README.md'), recursive=True))
# docstrings and comments that show a command
SOURCES = sorted([osp.join(REPO, 'Makefile')] + [
    f for top in ('mmmt', 'tools', 'demo', 'configs')
    for f in glob.glob(osp.join(REPO, top, '**', '*.py'), recursive=True)])

# the launchers pass everything after their own positional arguments on to these scripts
LAUNCHED = {'tools/dist_train.sh': 'tools/train.py', 'tools/slurm_train.sh': 'tools/train.py',
            'tools/dist_test.sh': 'tools/test.py', 'tools/slurm_test.sh': 'tools/test.py'}
# a script path not inside another path (tests/test_tools/test_x.py is no tool)
_TOOL = re.compile(r'(?<![\w/.-])((?:tools|demo)/[\w/]+\.(?:py|sh))')
_OPTION = re.compile(r'(?<![\w-])(--[a-z][\w-]*)')
_LINK = re.compile(r'\]\(([^)\s]+)\)')


def _rel(path: str) -> str:
    return osp.relpath(path, REPO)


def _read(path: str) -> str:
    with open(path, encoding='utf-8') as f:
        return f.read()


def _logical_lines(text: str) -> Iterator[Tuple[int, str]]:
    """Lines with their shell continuations (a trailing backslash) joined, and their number."""
    pending, start = '', 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.endswith('\\'):
            pending += line[:-1] + ' '
            continue
        yield start, pending + line
        pending = ''
    if pending:
        yield start, pending


def option_uses(text: str) -> Iterator[Tuple[int, str, str]]:
    """``(line, script, option)`` for each ``--option`` that follows a script of tools/ on its
    line; an option belongs to the nearest script before it."""
    for number, line in _logical_lines(text):
        scripts = list(_TOOL.finditer(line))
        for i, script in enumerate(scripts):
            end = scripts[i + 1].start() if i + 1 < len(scripts) else len(line)
            name = LAUNCHED.get(script.group(1), script.group(1))
            for option in _OPTION.findall(line, script.end(), end):
                yield number, name, option


class _Parsed(Exception):
    """Raised instead of parsing, carrying the parser a script built."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def _options_of(parser: argparse.ArgumentParser) -> Set[str]:
    """The option strings of a parser and of its sub-commands."""
    options = set()
    for action in parser._actions:
        options.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options |= _options_of(sub)
    return options


_CACHE: Dict[str, Set[str]] = {}


def script_options(script: str, monkeypatch) -> Set[str]:
    """The options the command-line parser of ``script`` (relative to the repository) accepts,
    read by running the script up to its first ``parse_args`` (which --help does without
    torch: tests/test_tools/test_fast_help.py)."""
    if script not in _CACHE:
        def capture(self, *args, **kwargs):
            raise _Parsed(self)

        with monkeypatch.context() as m:
            m.setattr(argparse.ArgumentParser, 'parse_args', capture)
            m.setattr(argparse.ArgumentParser, 'parse_known_args', capture)
            m.setattr(sys, 'argv', [osp.join(REPO, script), '--help'])
            m.syspath_prepend(REPO)
            try:
                runpy.run_path(osp.join(REPO, script), run_name='__main__')
            except _Parsed as parsed:
                _CACHE[script] = _options_of(parsed.parser)
            else:
                raise AssertionError(f'{script} parsed no command line')
    return _CACHE[script]


def test_option_uses_follow_each_script_and_its_continuation_lines():
    text = ('python tools/test.py CFG CKPT --show-dir vis `tools/train.py --amp`\n'
            'tools/dist_train.sh CFG 8 \\\n  --resume\n'
            'see tests/test_tools/test_x.py --not-a-tool and --no-script\n')
    assert list(option_uses(text)) == [(1, 'tools/test.py', '--show-dir'),
                                       (1, 'tools/train.py', '--amp'),
                                       (2, 'tools/train.py', '--resume')]


def test_script_options_reads_the_parser_without_running_the_tool(monkeypatch):
    options = script_options('tools/test.py', monkeypatch)
    assert {'--show-dir', '--out', '--tta', '--cfg-options', '--work-dir'} <= options
    assert '--no-such-option' not in options
    # sub-commands are included
    assert {'--keys', '--out'} <= script_options('tools/analysis_tools/analyze_logs.py',
                                                 monkeypatch)


def _all_option_uses() -> List[Tuple[str, int, str, str]]:
    return [(_rel(doc), number, script, option) for doc in DOCS + SOURCES
            for number, script, option in option_uses(_read(doc))]


def test_the_docs_give_options_to_tools():
    uses = _all_option_uses()
    # README's train/test commands and the docs/tools.md table at least
    assert ('tools/test.py', '--show-dir') in {(s, o) for _, _, s, o in uses}
    assert len({s for _, _, s, _ in uses}) >= 15
    assert ('Makefile', 'tools/train.py', '--data-root') in {(d, s, o) for d, _, s, o in uses}


def test_every_option_the_docs_give_a_tool_exists(monkeypatch):
    unknown = []
    for doc, number, script, option in _all_option_uses():
        assert osp.isfile(osp.join(REPO, script)), f'{doc}:{number}: no script {script}'
        if option not in script_options(script, monkeypatch):
            unknown.append(f'{doc}:{number}: {script} has no option {option}')
    assert not unknown, '\n'.join(unknown)


def github_anchors(markdown: str) -> Set[str]:
    """The ``#anchors`` GitHub gives a page: each heading's slug (lower case, punctuation
    other than ``-`` and ``_`` dropped, spaces as ``-``; ``-1``, ``-2`` for repeats) and each
    ``<a id=...>`` / ``<a name=...>``."""
    anchors, seen = set(), {}
    in_code = False
    for line in markdown.splitlines():
        if line.startswith('```'):
            in_code = not in_code
            continue
        heading = None if in_code else re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if heading:
            text = re.sub(r'`|\*\*|\[([^\]]*)\]\([^)]*\)', r'\1', heading.group(1))
            slug = re.sub(r'[^\w\- ]', '', text.lower()).replace(' ', '-')
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f'{slug}-{count}')
    anchors.update(re.findall(r'<a\s+(?:id|name)="([^"]+)"', markdown))
    return anchors


def test_github_anchors_follow_githubs_slugs():
    text = ('# Model zoo\n## `tools/test.py` options\n## Threads\n## Threads\n'
            '```\n# not a heading\n```\n<a id="cityscapes"></a>\n')
    assert github_anchors(text) == {'model-zoo', 'toolstestpy-options', 'threads', 'threads-1',
                                    'cityscapes'}


def test_every_relative_link_and_anchor_of_the_docs_exists():
    broken = []
    for doc in DOCS:
        text = _read(doc)
        for number, line in enumerate(text.splitlines(), 1):
            for target in _LINK.findall(line):
                if re.match(r'[a-z]+:', target):  # https:, mailto:
                    continue
                path, _, anchor = target.partition('#')
                file = osp.normpath(osp.join(osp.dirname(doc), path)) if path else doc
                where = f'{_rel(doc)}:{number}: ({target})'
                if not osp.exists(file):
                    broken.append(f'{where}: no file {_rel(file)}')
                elif anchor and file.endswith('.md') and anchor not in github_anchors(
                        _read(file)):
                    broken.append(f'{where}: {_rel(file)} has no heading #{anchor}')
    assert not broken, '\n'.join(broken)


# a dotted name, not inside a path or a longer name (work_dirs/x_mmmt.pth)
_NAME = re.compile(r'(?<![\w/.-])(mmmt(?:\.[A-Za-z_]\w*)+)')
_IMPORT = re.compile(r'^\s*from\s+(mmmt[\w.]*)\s+import\s+(\([^)]*\)|[^\n#]+)', re.M)
#: endings that make a dotted word a file name (mmmt.pth), not a Python name
_FILE_ENDINGS = ('py', 'pth', 'json', 'yml', 'yaml', 'txt', 'md')


def resolve(dotted: str) -> bool:
    """Whether ``dotted`` (``mmmt.a.b``) is a module or an attribute of one, or, as
    ``mmmt.Name``, a registered class (the ``type='mmmt.Name'`` of a config)."""
    parts = dotted.split('.')
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
            return True
        except AttributeError:
            break
    if len(parts) == 2:
        from mmmt import registry
        return any(isinstance(r, registry.Registry) and r.get(parts[1]) is not None
                   for r in vars(registry).values())
    return False


def name_uses(text: str) -> Iterator[Tuple[int, str]]:
    """``(line, dotted name)`` of every ``mmmt.<name>`` and every name a ``from mmmt...
    import`` line imports."""
    for number, line in enumerate(text.splitlines(), 1):
        for dotted in _NAME.findall(line):
            if dotted.rsplit('.', 1)[1] not in _FILE_ENDINGS:
                yield number, dotted
    for found in _IMPORT.finditer(text):
        number = text.count('\n', 0, found.start()) + 1
        for item in re.sub(r'#[^\n]*', '', found.group(2)).strip('()').split(','):
            if item.split():  # `a as b` imports a
                yield number, f'{found.group(1)}.{item.split()[0]}'


def test_name_uses_find_dotted_names_and_imports():
    text = ('Use `mmmt.utils.run_main` or `type=\'mmmt.MTMambaSegHead\'`; not x_mmmt.pth, '
            'mmmt.py or work_dirs/mmmt.x\n'
            '```python\nfrom mmmt.apis import MultiTaskInferencer\n'
            'from mmmt.registry import (MODELS,  # noqa: E402\n    DATASETS as D)\n```\n')
    assert list(name_uses(text)) == [
        (1, 'mmmt.utils.run_main'), (1, 'mmmt.MTMambaSegHead'), (3, 'mmmt.apis'),
        (4, 'mmmt.registry'), (3, 'mmmt.apis.MultiTaskInferencer'), (4, 'mmmt.registry.MODELS'),
        (4, 'mmmt.registry.DATASETS')]
    assert resolve('mmmt.utils.run_main') and resolve('mmmt.MTMambaSegHead')
    assert not resolve('mmmt.utils.no_such_function') and not resolve('mmmt.NoSuchHead')


def test_every_mmmt_name_of_the_docs_and_docstrings_exists():
    missing = [f'{_rel(doc)}:{number}: {dotted}' for doc in DOCS + SOURCES
               for number, dotted in name_uses(_read(doc)) if not resolve(dotted)]
    assert not missing, '\n'.join(missing)


def test_every_scan_backend_the_docs_name_exists():
    from mmmt.ops.selective_scan import _BACKENDS
    named = [(f'{_rel(doc)}:{number}', value) for doc in DOCS + SOURCES
             for number, line in enumerate(_read(doc).splitlines(), 1)
             for choice in re.findall(r'MMMT_SCAN_BACKEND=([a-z|]+)', line)
             for value in choice.split('|')]
    assert {v for _, v in named} == set(_BACKENDS)  # README and docs name each at least once
    wrong = [f'{where}: {value}' for where, value in named if value not in _BACKENDS]
    assert not wrong, '\n'.join(wrong)
