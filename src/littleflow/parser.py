"""Tokens into the syntax tree (see LANGUAGE.md §3–§7 for the grammar)."""

from __future__ import annotations

from .errors import FlowError
from .lexer import (
    ARROW,
    BAR,
    CONDITION,
    DECL,
    DOC,
    EOF,
    EQUALS,
    GUARD,
    LABEL,
    LBRACE,
    LBRACKET,
    LITERAL,
    MERGE,
    NAME,
    PARAMS,
    RBRACE,
    RBRACKET,
    RESERVED,
    RESOURCE,
    SEMI,
    STAR,
    Token,
    describe,
    tokens,
)
from .memory import fewer_collections
from .nodes import (
    Branch,
    Choice,
    Element,
    FlowDecl,
    Label,
    Literal,
    Loop,
    Module,
    Params,
    Resource,
    Statement,
    Step,
    Subflow,
    Tail,
    Task,
    TaskDecl,
)
from .source import Source

#: Subflows may nest at most this deep.
MAX_DEPTH = 100

_STEP_STARTS = frozenset((NAME, LBRACE, LBRACKET, LITERAL, RESOURCE))
_CLOSING = {LBRACE: RBRACE, LBRACKET: RBRACKET}
_FORMS = ("if", "repeat", "while")  # reserved words that begin a step (LANGUAGE.md §9.7, §9.8)


class Parser:
    """Parses flow text into a :class:`~littleflow.nodes.Module`."""

    def parse(self, text: str, file: str | None = None) -> Module:
        """Parse ``text`` (read from ``file``, if given, for error messages).

        Raises :class:`~littleflow.errors.FlowError` for any mistake in the text.
        """
        with fewer_collections():
            return _Parse(Source(text, file)).module()


class _Parse:
    """One parse: the token stream with one token of lookahead beyond the current."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._tokens = tokens(source)
        self.token: Token = next(self._tokens)
        self.kind = self.token.kind
        self._ahead: Token | None = None
        self.depth = 0

    # -- token stream ---------------------------------------------------
    def advance(self) -> Token:
        token = self.token
        if self._ahead is not None:
            self.token, self._ahead = self._ahead, None
        else:
            self.token = next(self._tokens)
        self.kind = self.token.kind
        return token

    def peek(self) -> str:
        """The kind of the token after the current one."""
        if self._ahead is None:
            self._ahead = next(self._tokens)
        return self._ahead.kind

    def word(self, word: str) -> bool:
        """Whether the current token is the reserved word ``word``."""
        return self.kind == NAME and self.token.value == word

    def error(self, message: str, offset: int | None = None) -> FlowError:
        return self.source.error(message, self.token.offset if offset is None else offset)

    def unexpected(self, expected: str) -> FlowError:
        hint = (
            " (a condition in backquotes follows if, elif, until or while; a guard before a step is ? `…`)"
            if self.kind == CONDITION
            else ""
        )
        return self.error(f"expected {expected}, found {describe(self.token)}{hint}")

    # -- grammar ----------------------------------------------------------
    def module(self) -> Module:
        module = Module([], self.source)
        module.statements = self.statements(None, None, module)
        return module

    def statements(
        self, opening: Token | None, closing: str | None, module: Module | None
    ) -> list[Statement]:
        """Statements (and, at the top level, declarations) up to ``closing``."""
        found: list[Statement] = []
        while True:
            kind = self.kind
            if kind == SEMI:
                self.advance()
            elif kind in _STEP_STARTS or kind in (LABEL, MERGE, STAR, GUARD):
                found.append(self.statement())
            elif kind == closing:
                return found
            elif kind == EOF and opening is not None:
                raise self.error(
                    f"unclosed subflow: expected '{closing}' to close the '{opening.kind}' at "
                    + "{}:{}".format(*self.source.position(opening.offset)),
                    opening.offset,
                )
            elif kind == EOF:
                return found
            elif kind == DECL:
                if module is None:
                    raise self.error("declarations are only allowed at the top level, not inside a subflow")
                self.declaration(module)
            elif kind in (RBRACE, RBRACKET):
                raise self.error(
                    f"unexpected '{kind}': no subflow is open"
                    if opening is None
                    else f"'{kind}' does not close the '{opening.kind}' (expected '{closing}')"
                )
            elif kind == PARAMS:
                raise self.error("parameters must follow a task name")
            else:
                raise self.unexpected("a task, a label, a subflow or a literal")

    def statement(self) -> Statement:
        statement = Statement([])
        if self.kind == LABEL and self.peek() == ARROW:
            head = self.label()
            if head.name == "end":
                raise self.error(":end may only stand last in a statement", head.offset)
            statement.head = head
            self.advance()
        statement.elements.append(self.element(self.prefix()))
        while self.kind == ARROW:
            self.advance()
            prefix = self.prefix()
            if self.kind in _STEP_STARTS:
                statement.elements.append(self.element(prefix))
                continue
            label = prefix.input_label
            if label is not None and prefix.guard is None and not prefix.iterate:
                if label.name in ("start", "end") and self.kind == ARROW:
                    raise self.error(
                        f":{label.name} may only stand first or last in a statement, not in the middle",
                        label.offset,
                    )
                statement.tail = Tail(label, prefix.merge)
                break
            raise self.unexpected("a task, a subflow, a literal or a label after '→'")
        if self.kind == SEMI:
            self.advance()
        return statement

    def prefix(self) -> Element:
        """What may stand before a step — ``:x``, ``?`…```, ``>``, ``*`` — in an
        Element whose step is filled in by :meth:`element`."""
        element = Element(None)  # type: ignore[arg-type]
        while True:
            kind = self.kind
            if kind == LABEL:
                if element.input_label is not None:
                    break
                element.input_label = self.label()
            elif kind == GUARD:
                if element.guard is not None:
                    raise self.error("a step may have only one guard")
                element.guard, element.guard_offset = self.token.value, self.token.offset
                self.advance()
            elif kind == MERGE:
                if element.merge:
                    raise self.error("'>' given twice")
                element.merge = True
                self.advance()
            elif kind == STAR:
                if element.iterate:
                    raise self.error("'*' given twice")
                element.iterate = True
                self.advance()
            else:
                break
        return element

    def element(self, element: Element) -> Element:
        """The step after ``element``'s prefix, alternatives (``A|B``) and an output label."""
        if self.kind not in _STEP_STARTS:
            if element.input_label is not None and self.kind in (EOF, SEMI, LABEL, RBRACE, RBRACKET):
                raise self.error(
                    f"label :{element.input_label.name} is not followed by a step "
                    "(to route into it, write '→' before it)",
                    element.input_label.offset,
                )
            raise self.unexpected("a task, a subflow or a literal")
        label = element.input_label
        if label is not None and label.name in ("start", "end"):
            raise self.error(
                f":{label.name} may only stand first or last in a statement, not before a step", label.offset
            )
        element.step = self.alternatives()
        if self.kind == LABEL:
            output = self.label()
            if output.name in ("start", "end"):
                raise self.error(
                    f":{output.name} may only stand first or last in a statement, not after a step",
                    output.offset,
                )
            element.output_label = output
        return element

    def alternatives(self) -> Step:
        """A step, or ``A|B|…`` as a subflow."""
        offset = self.token.offset
        step = self.step()
        if self.kind != BAR:
            return step
        alternatives = [Statement([Element(step)])]
        while self.kind == BAR:
            self.advance()
            if self.kind not in _STEP_STARTS:
                raise self.unexpected("a task, a subflow or a literal after '|'")
            end = self.token.offset
            alternatives.append(Statement([Element(self.step())]))
        return Subflow(alternatives, offset, end, alternation=True)

    def step(self) -> Step:
        token = self.advance()
        kind = token.kind
        if kind == NAME:
            if token.value in RESERVED:
                return self.form(token)
            return Task(token.value, self.params(), token.offset)
        if kind == LITERAL:
            if self.kind == PARAMS:
                raise self.error("a literal takes no parameters")
            return Literal(token.value, token.offset)
        if kind == RESOURCE:
            return Resource(token.value, self.params(), token.offset)
        return self.subflow(token)

    def subflow(self, opening: Token) -> Subflow:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"subflows nested more than {MAX_DEPTH} deep", opening.offset)
        statements = self.statements(opening, _CLOSING[opening.kind], None)
        end = self.advance().offset
        self.depth -= 1
        if self.kind == PARAMS:
            raise self.error("a subflow takes no parameters")
        return Subflow(statements, opening.offset, end)

    # -- conditionals and loops (LANGUAGE.md §9.7, §9.8) ------------------------
    def form(self, token: Token) -> Choice | Loop:
        """``if …``, ``repeat …`` or ``while …`` (``token`` is the word); any other
        reserved word standing where a step should is an error."""
        word = token.value
        if word not in _FORMS:
            belongs = {
                "then": "if … then",
                "elif": "if … elif",
                "else": "if … else",
                "until": "repeat … until",
                "do": "while … do",
            }[word]
            raise self.error(
                f"unexpected '{word}': it is a reserved word, not a task name (it belongs in {belongs})",
                token.offset,
            )
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(
                f"conditionals, loops and subflows nested more than {MAX_DEPTH} deep", token.offset
            )
        if self.kind == PARAMS:
            raise self.error(f"'{word}' is a reserved word, not a task: it takes no parameters")
        form: Choice | Loop
        if word == "if":
            branches = []
            while True:
                condition = self.condition(word)
                self.keyword("then", f"after the condition of '{word}'")
                branches.append(Branch(condition.value, condition.offset, self.branch("then", False)))
                if not self.word("elif"):
                    break
                word = self.advance().value
            if self.word("else"):
                at = self.advance().offset
                branches.append(Branch(None, at, self.branch("else", False)))
                if self.word("elif"):
                    raise self.error(
                        "'elif' after 'else': the else branch comes last (write elif … before else)",
                        self.token.offset,
                    )
            form = Choice(branches, token.offset, branches[-1].step.step.offset)
        elif word == "repeat":
            body = self.branch("repeat", True, "the body of a loop")
            self.keyword("until", "after the body of 'repeat'")
            condition = self.condition("until")
            form = Loop("repeat", condition.value, condition.offset, body, token.offset, condition.offset)
        else:
            condition = self.condition(word)
            self.keyword("do", "after the condition of 'while'")
            body = self.branch("do", False, "the body of a loop")
            form = Loop("while", condition.value, condition.offset, body, token.offset, body.step.offset)
        self.depth -= 1
        if self.kind == PARAMS:
            raise self.error("a conditional or loop takes no parameters")
        return form

    def condition(self, word: str) -> Token:
        if self.kind != CONDITION:
            raise self.unexpected(f"a condition in backquotes after '{word}' (`JSONPath filter`)")
        return self.advance()

    def keyword(self, word: str, where: str) -> None:
        if not self.word(word):
            raise self.unexpected(f"'{word}' {where}")
        self.advance()

    def branch(self, word: str, more: bool, what: str = "a branch") -> Element:
        """The one step after ``then``, ``else``, ``repeat`` or ``do``: a task, a ``|`` group
        or a subflow, with ``>`` or ``*`` if wanted, and no label of its own. ``more`` says
        that a keyword follows it (``elif``, ``else``, ``until``), so no label may either."""
        element = Element(None)  # type: ignore[arg-type]
        while self.kind in (MERGE, STAR):
            if self.kind == MERGE:
                if element.merge:
                    raise self.error("'>' given twice")
                element.merge = True
            else:
                if element.iterate:
                    raise self.error("'*' given twice")
                element.iterate = True
            self.advance()
        kind = self.kind
        if kind == LABEL:
            raise self.error(
                f"{what} cannot carry a label of its own outside braces "
                f"(write '{word} {{ :{self.token.value} … }}')"
            )
        if kind == GUARD:
            raise self.error(f"{what} cannot carry a guard outside braces (write '{word} {{ ? `…` … }}')")
        if kind == NAME and self.token.value in _FORMS:
            raise self.error(
                f"a conditional or loop as {what} must be written in braces "
                f"(write '{word} {{ {self.token.value} … }}')"
            )
        if kind in (LITERAL, RESOURCE):
            raise self.error(
                f"{what} is a task, a '|' group or a subflow in braces, not {describe(self.token)}"
            )
        if kind not in (NAME, LBRACE, LBRACKET):
            raise self.unexpected(f"a task or a subflow after '{word}'")
        element.step = self.alternatives()
        if self.kind == LABEL:
            label = self.token
            ahead = (
                self.peek() == NAME
                and self._ahead is not None
                and self._ahead.value in ("elif", "else", "until")
            )
            if more or ahead:
                hint = (
                    " (a label after the last branch names the output of the whole form)"
                    if what == "a branch"
                    else f" (write '{{ … :{label.value} }}'; a label after the whole loop names its output)"
                )
                raise self.error(
                    f"label :{label.value}: {what} cannot carry a label of its own outside braces" + hint
                )
        return element

    def params(self) -> Params | None:
        if self.kind != PARAMS:
            return None
        token = self.advance()
        return Params(token.value, token.offset)

    def label(self) -> Label:
        token = self.advance()
        return Label(token.value, token.offset)

    def name(self, what: str) -> Token:
        if self.kind != NAME:
            raise self.unexpected(what)
        if self.token.value in RESERVED:
            raise self.error(f"'{self.token.value}' is a reserved word and cannot name a task or a flow")
        return self.advance()

    def doc(self) -> str | None:
        return self.advance().value if self.kind == DOC else None

    def declaration(self, module: Module) -> None:
        keyword = self.advance()
        name = self.name(f"a name after @{keyword.value}")
        if keyword.value == "flow":
            if module.flow is not None:
                raise self.error("a flow has only one @flow declaration", keyword.offset)
            module.flow = FlowDecl(name.value, self.params(), self.doc(), keyword.offset)
        else:
            if name.value in module.tasks:
                raise self.error(f"task {name.value} is already declared", name.offset)
            alias_of = None
            if self.kind == EQUALS:
                self.advance()
                alias_of = self.name("the name of the task this one stands for").value
            params, doc = self.params(), self.doc()
            body = None
            if self.kind in (LBRACE, LBRACKET):
                if alias_of is not None:
                    raise self.error(f"alias {name.value} may not have a subflow")
                if params is not None:
                    raise self.error(f"named subflow {name.value} may not have parameters", params.offset)
                body = self.subflow(self.advance())
                body.name = name.value
            module.tasks[name.value] = TaskDecl(name.value, alias_of, params, doc, body, keyword.offset)
        if self.kind == SEMI:
            self.advance()
