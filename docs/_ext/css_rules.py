"""A stylesheet without the rules that no page can match: pure functions over tinycss2's parse.

A selector such as ``.navbar-expand-xl .offcanvas-header`` can only match if some page or script uses
both class names. :func:`drop_unmatched_rules` keeps the selectors whose class and id names (those at
the selector's top level: a name inside ``:not(...)`` does not make a match impossible) are all in
use, and drops a rule when none of its selectors is left; ``@media`` and the other grouping rules are
pruned inside and dropped when empty. Everything else (``@font-face``, ``@keyframes``, declarations)
is kept as written.

A name counts as in use when it is a word of a page or a script (:func:`words`), or when it fits a
class name that a script builds from a template literal, such as ```bs-${name}-auto```
(:func:`built_name_patterns`).
"""

import functools
import re

import tinycss2

WORD = re.compile(r"-?[A-Za-z_][\w-]*")
TEMPLATE_LITERAL = re.compile(r"`([^`]*)`")
PLACEHOLDER = re.compile(r"\$\{[^}]*\}")
GROUPING_RULES = {"media", "supports", "layer", "container"}


class CSSError(ValueError):
    """A rule that tinycss2 cannot parse: rather than drop it silently, the build stops on it."""

    def __init__(self, message: str, line: int, source: str = ""):
        super().__init__(f"{source + ', ' if source else ''}line {line}: {message}")
        self.message, self.line = message, line


def words(text: str) -> set[str]:
    """Every word that could be a class or id name in ``text`` (a page or a script)."""
    return set(WORD.findall(text))


def built_name_patterns(script: str) -> list[re.Pattern]:
    """Patterns for the names that ``script`` builds from template literals: ```bs-${n}-auto``` gives
    ``bs-[\\w-]*-auto``. A literal with no fixed word in it (```${a}${b}```) could be any name and gives
    no pattern: such names are not class names in the scripts a theme ships."""
    patterns = []
    for literal in TEMPLATE_LITERAL.findall(script):
        parts = PLACEHOLDER.split(literal)
        if len(parts) > 1 and WORD.fullmatch("".join(parts)):
            patterns.append(re.compile(r"[\w-]*".join(map(re.escape, parts))))
    return patterns


def _selectors(prelude: list) -> list[list]:
    """A rule's prelude split at its top-level commas."""
    selectors = [[]]
    for token in prelude:
        if token.type == "literal" and token.value == ",":
            selectors.append([])
        else:
            selectors[-1].append(token)
    return selectors


def selector_names(selector: list) -> list[str]:
    """The class and id names at the top level of one selector's tokens."""
    names = []
    for before, token in zip([None, *selector], selector, strict=False):
        follows_dot = before is not None and before.type == "literal" and before.value == "."
        if token.type == "ident" and follows_dot:
            names.append(token.value)
        elif token.type == "hash" and token.is_identifier:
            names.append(token.value)
    return names


def _pruned(rules: list, in_use) -> list[str]:
    kept = []
    for rule in rules:
        if rule.type == "error":
            raise CSSError(rule.message, rule.source_line)
        if rule.type == "qualified-rule":
            selectors = [
                tinycss2.serialize(selector).strip()
                for selector in _selectors(rule.prelude)
                if all(in_use(name) for name in selector_names(selector))
            ]
            if selectors:
                kept.append(f"{','.join(selectors)}{{{tinycss2.serialize(rule.content)}}}")
        elif rule.type == "at-rule" and rule.lower_at_keyword in GROUPING_RULES and rule.content is not None:
            inner = _pruned(tinycss2.parse_blocks_contents(rule.content, True, True), in_use)
            if inner:
                kept.append(f"@{rule.at_keyword}{tinycss2.serialize(rule.prelude)}{{{''.join(inner)}}}")
        else:
            kept.append(tinycss2.serialize([rule]))
    return kept


def drop_unmatched_rules(css: str, names: set[str], patterns: list[re.Pattern] = ()) -> str:
    """``css`` without the selectors that need a class or id name neither in ``names`` nor fitting one
    of ``patterns``, and without the rules left with no selector. Raises :class:`CSSError` on a rule
    that does not parse."""

    @functools.cache
    def in_use(name: str) -> bool:
        return name in names or any(pattern.fullmatch(name) for pattern in patterns)

    rules = tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)
    return "\n".join(_pruned(rules, in_use)) + "\n"
