"""A tiny GraphQL reader for the sandbox's Shopify endpoint (no GraphQL library).

It reads what a client sends: operations with variable definitions (defaults honoured), fields
with aliases and arguments, variables, lists and input objects, named fragments and inline
fragments, and the @include/@skip directives. A document is checked against a small schema
(type → field → type) before anything runs, so a misspelt or unknown field gets Shopify's
"Field 'x' doesn't exist on type 'Order'" error even when no order matches, a scalar with a
selection or an object without one is refused, and arguments a field does not take are
refused. Executing projects plain Python data (dicts, lists, and callables for fields with
arguments) onto the selection, so the answer holds exactly the fields that were asked for.
Not supported: subscriptions, introspection beyond __typename, input type checking.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


class GraphQLError(Exception):
    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 path: list | None = None, extensions: dict | None = None):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column
        self.path, self.extensions = path, extensions

    def as_dict(self) -> dict:
        out: dict = {"message": self.message}
        if self.line is not None:
            out["locations"] = [{"line": self.line, "column": self.column}]
        if self.path is not None:
            out["path"] = self.path
        if self.extensions:
            out["extensions"] = self.extensions
        return out


# --- Lexer ----------------------------------------------------------------------------------

_TOKEN = re.compile(r'''
    (?P<skip>[\s,\ufeff]+|\#[^\n\r]*)
  | (?P<block>"""[\s\S]*?""")
  | (?P<string>"(?:\\.|[^"\\\n\r])*")
  | (?P<float>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+))
  | (?P<int>-?(?:0|[1-9][0-9]*))
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<punct>\.\.\.|[!$&()\:=@\[\]{}|])
''', re.VERBOSE)


@dataclass
class Token:
    kind: str
    value: str
    line: int
    column: int


def tokenize(source: str) -> list[Token]:
    tokens, pos, line, line_start = [], 0, 1, 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if not match:
            raise GraphQLError(f'Parse error on "{source[pos]}" at [{line}, {pos - line_start + 1}]',
                               line=line, column=pos - line_start + 1)
        kind, text = match.lastgroup, match.group()
        if kind != "skip":
            tokens.append(Token(kind, text, line, pos - line_start + 1))
        newlines = text.count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + text.rindex("\n") + 1
        pos = match.end()
    tokens.append(Token("eof", "", line, pos - line_start + 1))
    return tokens


# --- AST ------------------------------------------------------------------------------------


@dataclass
class Var:
    name: str


class Enum(str):
    """An enum value (SORT_KEY), as opposed to a string literal."""


@dataclass
class Field:
    name: str
    alias: str | None
    args: dict
    directives: list
    selections: list | None
    line: int
    column: int

    @property
    def key(self) -> str:
        return self.alias or self.name


@dataclass
class Spread:
    name: str
    directives: list
    line: int
    column: int


@dataclass
class Inline:
    type_condition: str | None
    directives: list
    selections: list


@dataclass
class Operation:
    kind: str
    name: str | None
    variables: dict  # name → (type string, default)
    selections: list


@dataclass
class Document:
    operations: list[Operation] = field(default_factory=list)
    fragments: dict = field(default_factory=dict)  # name → (type condition, selections)


class Parser:
    def __init__(self, source: str):
        self.tokens = tokenize(source)
        self.pos = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def fail(self, token: Token | None = None):
        token = token or self.tok
        shown = token.value or "end of file"
        kind = {"name": "IDENTIFIER", "string": "STRING", "int": "INT", "float": "FLOAT",
                "eof": "EOF"}.get(token.kind, token.value)
        raise GraphQLError(f'Parse error on "{shown}" ({kind}) at [{token.line}, {token.column}]',
                           line=token.line, column=token.column)

    def peek(self, value: str) -> bool:
        return self.tok.kind in ("punct", "name") and self.tok.value == value

    def expect(self, value: str) -> Token:
        if not self.peek(value):
            self.fail()
        token = self.tok
        self.pos += 1
        return token

    def name(self) -> Token:
        if self.tok.kind != "name":
            self.fail()
        token = self.tok
        self.pos += 1
        return token

    def document(self) -> Document:
        doc = Document()
        while self.tok.kind != "eof":
            if self.peek("{"):
                doc.operations.append(Operation("query", None, {}, self.selection_set()))
            elif self.peek("fragment"):
                self.pos += 1
                name = self.name().value
                self.expect("on")
                type_condition = self.name().value
                self.directives()
                doc.fragments[name] = (type_condition, self.selection_set())
            elif self.tok.kind == "name" and self.tok.value in ("query", "mutation", "subscription"):
                kind = self.name().value
                name = self.name().value if self.tok.kind == "name" else None
                variables = self.variable_definitions() if self.peek("(") else {}
                self.directives()
                doc.operations.append(Operation(kind, name, variables, self.selection_set()))
            else:
                self.fail()
        if not doc.operations:
            raise GraphQLError("No operations in the document")
        return doc

    def variable_definitions(self) -> dict:
        self.expect("(")
        variables = {}
        while not self.peek(")"):
            self.expect("$")
            name = self.name().value
            self.expect(":")
            type_string = self.type_ref()
            default = None
            if self.peek("="):
                self.pos += 1
                default = self.value(const=True)
            self.directives()
            variables[name] = (type_string, default)
        self.expect(")")
        return variables

    def type_ref(self) -> str:
        if self.peek("["):
            self.pos += 1
            inner = self.type_ref()
            self.expect("]")
            text = f"[{inner}]"
        else:
            text = self.name().value
        if self.peek("!"):
            self.pos += 1
            text += "!"
        return text

    def directives(self) -> list:
        found = []
        while self.peek("@"):
            self.pos += 1
            name = self.name().value
            found.append((name, self.arguments() if self.peek("(") else {}))
        return found

    def selection_set(self) -> list:
        self.expect("{")
        selections = []
        while not self.peek("}"):
            selections.append(self.selection())
        self.expect("}")
        if not selections:
            self.fail()
        return selections

    def selection(self):
        if self.peek("..."):
            start = self.tok
            self.pos += 1
            if self.tok.kind == "name" and self.tok.value != "on":
                return Spread(self.name().value, self.directives(), start.line, start.column)
            type_condition = None
            if self.peek("on"):
                self.pos += 1
                type_condition = self.name().value
            return Inline(type_condition, self.directives(), self.selection_set())
        first = self.name()
        alias, name = None, first
        if self.peek(":"):
            self.pos += 1
            alias, name = first.value, self.name()
        args = self.arguments() if self.peek("(") else {}
        directives = self.directives()
        selections = self.selection_set() if self.peek("{") else None
        return Field(name.value, alias, args, directives, selections, name.line, name.column)

    def arguments(self) -> dict:
        self.expect("(")
        args = {}
        while not self.peek(")"):
            name = self.name().value
            self.expect(":")
            args[name] = self.value()
        self.expect(")")
        return args

    def value(self, const: bool = False):
        token = self.tok
        if self.peek("$") and not const:
            self.pos += 1
            return Var(self.name().value)
        if token.kind == "int":
            self.pos += 1
            return int(token.value)
        if token.kind == "float":
            self.pos += 1
            return float(token.value)
        if token.kind == "string":
            self.pos += 1
            return json.loads(token.value)
        if token.kind == "block":
            self.pos += 1
            return token.value[3:-3].replace('\\"""', '"""').strip()
        if token.kind == "name":
            self.pos += 1
            return {"true": True, "false": False, "null": None}.get(token.value, Enum(token.value))
        if self.peek("["):
            self.pos += 1
            items = []
            while not self.peek("]"):
                items.append(self.value(const))
            self.pos += 1
            return items
        if self.peek("{"):
            self.pos += 1
            obj = {}
            while not self.peek("}"):
                key = self.name().value
                self.expect(":")
                obj[key] = self.value(const)
            self.pos += 1
            return obj
        self.fail()


def parse(source: str) -> Document:
    return Parser(source).document()


# --- Schema check and execution -------------------------------------------------------------


def named_type(type_string: str) -> str:
    return type_string.replace("[", "").replace("]", "").replace("!", "")


class Executor:
    """schema: {type: {field: type string}}; arguments: {(type, field): {argument names}}."""

    def __init__(self, schema: dict, arguments: dict, document: Document,
                 variables: dict | None, operation_name: str | None):
        self.schema, self.arguments, self.doc = schema, arguments, document
        ops = document.operations
        if operation_name:
            ops = [op for op in ops if op.name == operation_name]
            if not ops:
                raise GraphQLError(f'No operation named "{operation_name}"')
        elif len(ops) > 1:
            raise GraphQLError("An operation name is required")
        self.operation = ops[0]
        self.variables = self._variables(variables or {})

    def _variables(self, given: dict) -> dict:
        values = {}
        for name, (type_string, default) in self.operation.variables.items():
            if name in given:
                values[name] = given[name]
            elif default is not None:
                values[name] = default
            elif type_string.endswith("!"):
                raise GraphQLError(f"Variable ${name} of type {type_string} was provided invalid value",
                                   extensions={"value": None, "problems": [
                                       {"path": [], "explanation": "Expected value to not be null"}]})
            else:
                values[name] = None
        return values

    def resolve(self, value):
        if isinstance(value, Var):
            if value.name not in self.operation.variables:
                raise GraphQLError(f"Variable ${value.name} is used but not declared",
                                   extensions={"code": "variableNotDefined", "variableName": value.name})
            return self.variables.get(value.name)
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def _included(self, directives: list) -> bool:
        for name, args in directives:
            flag = bool(self.resolve(args.get("if")))
            if (name == "include" and not flag) or (name == "skip" and flag):
                return False
        return True

    def fields(self, selections: list, type_name: str, seen=()) -> list[Field]:
        """The fields of a selection set with fragments spread in."""
        out = []
        for sel in selections:
            if isinstance(sel, Field):
                if self._included(sel.directives):
                    out.append(sel)
            elif isinstance(sel, Inline):
                if self._included(sel.directives) and sel.type_condition in (None, type_name):
                    out += self.fields(sel.selections, type_name, seen)
            else:
                if sel.name not in self.doc.fragments:
                    raise GraphQLError(f"Fragment {sel.name} was used, but not defined",
                                       line=sel.line, column=sel.column,
                                       extensions={"code": "useAndDefineFragment", "fragmentName": sel.name})
                if sel.name in seen:
                    raise GraphQLError(f"Fragment {sel.name} contains an infinite loop",
                                       line=sel.line, column=sel.column)
                condition, selections_ = self.doc.fragments[sel.name]
                if self._included(sel.directives) and condition == type_name:
                    out += self.fields(selections_, type_name, (*seen, sel.name))
        return out

    def check(self, selections: list, type_name: str) -> None:
        for f in self.fields(selections, type_name):
            if f.name == "__typename":
                continue
            type_string = self.schema[type_name].get(f.name)
            if type_string is None:
                raise GraphQLError(f"Field '{f.name}' doesn't exist on type '{type_name}'",
                                   line=f.line, column=f.column,
                                   extensions={"code": "undefinedField", "typeName": type_name,
                                               "fieldName": f.name})
            accepted = self.arguments.get((type_name, f.name), set())
            for arg in f.args:
                if arg not in accepted:
                    raise GraphQLError(f"Field '{f.name}' doesn't accept argument '{arg}'",
                                       line=f.line, column=f.column,
                                       extensions={"code": "argumentNotAccepted", "name": f.name,
                                                   "typeName": "Field", "argumentName": arg})
            target = named_type(type_string)
            if target in self.schema and f.selections is None:
                raise GraphQLError(
                    f"Field must have selections (field '{f.name}' returns {target} but has no "
                    "selections. Did you mean '" + f.name + " { ... }'?)",
                    line=f.line, column=f.column,
                    extensions={"code": "selectionMismatch", "nodeName": f"field '{f.name}'",
                                "typeName": target})
            if target not in self.schema and f.selections is not None:
                raise GraphQLError(
                    f"Selections can't be made on scalars (field '{f.name}' returns {target} but "
                    "has selections [...])", line=f.line, column=f.column,
                    extensions={"code": "selectionMismatch", "nodeName": f"field '{f.name}'",
                                "typeName": target})
            if f.selections is not None:
                self.check(f.selections, target)

    def execute(self, selections: list, type_name: str, value, path: list) -> dict:
        out = {}
        for f in self.fields(selections, type_name):
            if f.name == "__typename":
                out[f.key] = type_name
                continue
            raw = value.get(f.name) if isinstance(value, dict) else None
            if callable(raw):
                args = {k: self.resolve(v) for k, v in f.args.items()}
                raw = raw(args, [*path, f.key])
            target = named_type(self.schema[type_name][f.name])
            out[f.key] = self.complete(raw, f, target, [*path, f.key])
        return out

    def complete(self, raw, f: Field, target: str, path: list):
        if raw is None or f.selections is None:
            return raw
        if isinstance(raw, list | tuple):
            return [self.complete(item, f, target, [*path, n]) for n, item in enumerate(raw)]
        return self.execute(f.selections, target, raw, path)

    def run(self, root, root_type: str) -> dict:
        self.check(self.operation.selections, root_type)
        return self.execute(self.operation.selections, root_type, root, [])
