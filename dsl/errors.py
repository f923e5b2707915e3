"""The one error type of the front end, with the `FILE:LINE:COL: error:` rendering.

Every user-facing problem (syntax, names, sizes, table rows, ...) becomes a `SupError` carrying
the file, line and column, so the command line can print it the way sup-language.md specifies
and exit with status 2, and the Python API can catch one exception type.
"""

from __future__ import annotations


class SupError(Exception):
    """A problem with user input, located in a source file.

    `line` and `column` are 1-based (0 when unknown). `source` is the text of the file, used to
    show the offending line with a caret under the column.
    """

    def __init__(self, message: str, line: int = 0, column: int = 0,
                 file: str | None = None, source: str | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.file = file
        self.source = source

    def located(self, file: str | None, source: str | None) -> "SupError":
        """Fill in the file and source text if they are not set yet; return self."""
        if self.file is None:
            self.file = file
        if self.source is None:
            self.source = source
        return self

    def format(self) -> str:
        """Render as `FILE:LINE:COL: error: MESSAGE`, the source line and a caret."""
        file = self.file or "<input>"
        where = f"{file}:{self.line}:{self.column}" if self.line > 0 else file
        head = f"{where}: error: {self.message}"
        text = self._source_line()
        if text is None:
            return head
        caret = " " * (max(self.column, 1) - 1 + 4) + "^"
        return f"{head}\n    {text}\n{caret}"

    def _source_line(self) -> str | None:
        if not self.source or self.line < 1:
            return None
        # lines end at '\n' only, as the parser counts them (str.splitlines would also split
        # at form feeds and other separators and show the wrong line)
        lines = self.source.split("\n")
        if self.line > len(lines):
            return None
        return lines[self.line - 1].rstrip("\r").expandtabs(1)

    def __str__(self) -> str:
        return self.format()


def error_at(node, message: str) -> SupError:
    """A SupError located at an AST node or token (anything with .line and .column)."""
    return SupError(message, getattr(node, "line", 0) or 0, getattr(node, "column", 0) or 0)
