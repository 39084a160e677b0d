"""The `lakegate sql` shell: statements from a terminal or a pipe, one warm session.

Statements are separated by `;` (split by `sqlparse`, so a `;` inside a string or a comment does
not end one). With a terminal attached the shell prompts, with line editing and a history kept in
the state folder (`readline`); piped, it reads statements as they arrive. Each result prints as a
table, CSV or JSON lines. A failing statement prints its error on stderr and the shell goes on;
`REFRESH MODELS` re-resolves the models' aliases.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import sqlparse

from lakegate_errors import UserError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from spark_jobs.services.model_refresh import ModelCatalog

OUTPUT_FORMATS = ("table", "csv", "json")
PROMPT = "lakegate> "
CONTINUATION = "       > "
_REFRESH = re.compile(r"^\s*refresh\s+models\s*$", re.IGNORECASE)
_ERROR_LINE = re.compile(r"^\s*[\w.]*(Error|Exception)\b.*: ")


def statement_text(raw: str) -> str:
    """The statement without comments, surrounding blanks and its final `;` ('' when empty)."""
    text = sqlparse.format(raw, strip_comments=True).strip()
    return text.rstrip(";").strip()


def split_complete(buffer: str) -> tuple[list[str], str]:
    """Split `buffer` into the statements ended by `;` and the unfinished rest (as typed)."""
    complete: list[str] = []
    consumed = 0
    for statement in sqlparse.parse(buffer):
        if not _ends_with_semicolon(statement):
            break
        text = str(statement)
        consumed = buffer.index(text, consumed) + len(text)
        complete.append(text)
    rest = buffer[consumed:]
    return complete, rest if rest.strip() else ""


def _ends_with_semicolon(statement: sqlparse.sql.Statement) -> bool:
    """Whether the last token that is not blank or a comment is a `;` outside any quotes."""
    tokens = [
        token
        for token in statement.flatten()
        if not token.is_whitespace and token.ttype not in sqlparse.tokens.Comment
    ]
    if any(token.ttype in sqlparse.tokens.Error and token.value in "'\"`" for token in tokens):
        return False  # an open quote: the statement goes on on the next line
    return bool(tokens) and tokens[-1].match(sqlparse.tokens.Punctuation, ";")


def piped_statements(stream: TextIO) -> Iterator[str]:
    """Yield each statement of `stream` as soon as its `;` has been read (the last may lack it)."""
    buffer = ""
    for line in stream:
        buffer += line
        if ";" not in line:
            continue
        complete, buffer = split_complete(buffer)
        yield from complete
    if buffer.strip():
        yield buffer


def prompted_statements(history_file: Path | None) -> Iterator[str]:
    """Yield statements typed at a prompt with line editing and history, until end of input."""
    import readline

    if history_file is not None:
        history_file.parent.mkdir(parents=True, exist_ok=True)
        if history_file.is_file():
            readline.read_history_file(str(history_file))
    buffer = ""
    try:
        while True:
            try:
                line = input(CONTINUATION if buffer.strip() else PROMPT)
            except KeyboardInterrupt:  # Ctrl-C drops the statement being typed
                buffer = ""
                print(file=sys.stderr)
                continue
            except EOFError:
                print(file=sys.stderr)
                break
            buffer += line + "\n"
            if ";" in line:
                complete, buffer = split_complete(buffer)
                yield from complete
        if buffer.strip():
            yield buffer
    finally:
        if history_file is not None:
            readline.set_history_length(1000)
            readline.write_history_file(str(history_file))


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-ready value: Rows become objects, dates and decimals strings."""
    from pyspark.sql import Row

    if isinstance(value, Row):
        return {key: _plain(item) for key, item in value.asDict().items()}
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def write_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: TextIO
) -> None:
    """Print rows as a boxed table, CSV with a header, or one JSON object per line."""
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else _cell(v) for v in row] for row in rows])
        return
    if fmt == "json":
        for row in rows:
            out.write(json.dumps(dict(zip(columns, _plain(list(row)), strict=True))) + "\n")
        return
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in cells]) for i, name in enumerate(columns)]
    rule = "+" + "+".join("-" * (width + 2) for width in widths) + "+"
    lines = [
        rule,
        "| " + " | ".join(n.ljust(w) for n, w in zip(columns, widths, strict=True)) + " |",
    ]
    lines.append(rule)
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.append(rule)
    out.write("\n".join(lines) + "\n")


def error_summary(exc: BaseException) -> str:
    """One readable line for a failed statement (a Python worker's own error, not its trace)."""
    if isinstance(exc, UserError):
        return str(exc)
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    raised = [line for line in lines if _ERROR_LINE.match(line)]
    if len(lines) > 1 and raised:  # a traceback: the last raised error says what went wrong
        return raised[-1]
    return lines[0]


@dataclass
class ShellResult:
    """How a shell session went."""

    statements: int = 0
    failures: list[str] = field(default_factory=list)


@dataclass
class SqlShell:
    """Runs statements one by one in a warm session and prints each result.

    Attributes:
        spark: the session (model functions and views registered).
        catalog: the model functions, refreshed by `REFRESH MODELS`.
        output_format: `table`, `csv` or `json`.
        limit: print at most this many rows of a result (None: all).
        out: where results go; messages and errors go to `err`.
    """

    spark: SparkSession
    catalog: ModelCatalog
    output_format: str = "table"
    limit: int | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    def run(self, statements: Iterable[str]) -> ShellResult:
        """Run every statement; a failure is printed and the next statement runs."""
        result = ShellResult()
        for raw in statements:
            text = statement_text(raw)
            if not text:
                continue
            result.statements += 1
            started = time.perf_counter()
            try:
                self.execute(text)
            except KeyboardInterrupt:
                self.spark.sparkContext.cancelAllJobs()
                result.failures.append(text)
                print("cancelled", file=self.err)
            except Exception as exc:
                result.failures.append(text)
                print(f"error: {error_summary(exc)}", file=self.err)
            else:
                print(f"({time.perf_counter() - started:.2f} s)", file=self.err)
            self.out.flush()
            self.err.flush()
        return result

    def execute(self, text: str) -> None:
        """Run one statement (or `REFRESH MODELS`) and print what it returns."""
        from udfs import run_checked_sql

        if _REFRESH.match(text):
            for line in self.catalog.refresh():
                print(line, file=self.out)
            return
        df = run_checked_sql(self.spark, text, self.catalog.functions.values())
        self.print_frame(df)

    def print_frame(self, df: DataFrame) -> None:
        """Print a result; statements without columns (DDL) print nothing."""
        columns = df.columns
        if not columns:
            return
        rows = df.collect() if self.limit is None else df.take(self.limit + 1)
        shown = rows if self.limit is None else rows[: self.limit]
        write_rows(columns, shown, self.output_format, self.out)
        more = " (more not shown)" if len(rows) > len(shown) else ""
        print(f"{len(shown)} row{'s' if len(shown) != 1 else ''}{more}", file=self.err)


def statements_from(stream: TextIO, history_file: Path | None) -> Iterator[str]:
    """Prompted statements when `stream` is a terminal, else the piped ones."""
    if stream.isatty():
        return prompted_statements(history_file)
    return piped_statements(stream)


def run_shell(
    spark: SparkSession,
    catalog: ModelCatalog,
    *,
    output_format: str,
    limit: int | None,
    history_file: Path | None,
    stream: TextIO | None = None,
    say: Callable[[str], None] | None = None,
) -> ShellResult:
    """Read statements from `stream` (stdin by default) and run them in `spark`.

    Raises:
        UserError: piped input had failing statements (after all of them ran).
    """
    stream = stream if stream is not None else sys.stdin
    say = say or (lambda line: print(line, file=sys.stderr))
    interactive = stream.isatty()
    if interactive:
        say("lakegate sql: end statements with ';', REFRESH MODELS re-reads aliases, Ctrl-D quits")
    shell = SqlShell(spark, catalog, output_format, limit)
    result = shell.run(statements_from(stream, history_file))
    if result.failures and not interactive:
        raise UserError(
            f"{len(result.failures)} of {result.statements} statements failed "
            f"(first: {result.failures[0][:80]!r}); fix them and run the input again"
        )
    return result
