"""Data tables for the command line: read features, labels and ids; write embeddings.

Readers: ``.npy``/``.npz`` (numpy), CSV/TSV/TXT tables, also gzipped (pandas'
C parser when pandas is installed, else numpy's ``loadtxt``: both stream the
numbers without a Python object per field), ``.parquet`` (pandas with pyarrow
or fastparquet). A table's first row is a header unless it looks like data
(see :func:`_has_header`); an unnamed first column (pandas' index) holds row
ids. Every problem with a file raises :class:`TableError` with one line that
names it (and the line number, for a text table).
"""

import csv
import gzip
import math
from pathlib import Path

__all__ = ["READABLE", "WRITABLE", "Table", "TableError", "read_table", "write_table"]

_BINARY = (".npy", ".npz", ".parquet")
_TEXT = (".csv", ".tsv", ".txt")
READABLE = (*_BINARY, *_TEXT, *(suffix + ".gz" for suffix in _TEXT))
WRITABLE = (".npy", *_TEXT)


class TableError(Exception):
    """A problem with a data file, for the user to fix."""


def _import_pandas():
    """pandas when it is installed (the fast CSV reader), else None."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _kind(path):
    """``(suffix, gzipped)``: ``data.csv.gz`` gives ``(".csv", True)``."""
    suffixes = [s.lower() for s in path.suffixes]
    if len(suffixes) >= 2 and suffixes[-1] == ".gz" and suffixes[-2] in _TEXT:
        return suffixes[-2], True
    return path.suffix.lower(), False


def _delimiter(suffix):
    """Tab for .tsv, comma for .csv, any whitespace (None) for .txt."""
    return {".tsv": "\t", ".txt": None}.get(suffix, ",")


def _is_number(text):
    """True when ``text`` is a finite number."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _rows(path, suffix, gzipped):
    """Yield ``(line_number, fields)`` for each non-blank line, quotes removed."""
    delimiter = _delimiter(suffix)
    opener = gzip.open if gzipped else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        if delimiter is None:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield number, line.split()
            return
        reader = csv.reader(handle, delimiter=delimiter)
        for fields in reader:
            if any(field.strip() for field in fields):
                yield reader.line_num, [field.strip() for field in fields]


def _is_index_names(fields, second):
    """Whether ``fields`` are pandas' default column names 0..m-1 (or 1..m).

    ``DataFrame(X).to_csv()`` writes them as a header of numbers. Two or
    fewer plain integers could be a data row, so short sequences count only
    when the next row is written with decimals.
    """
    if not all(field.isdigit() for field in fields):
        return False
    values = [int(field) for field in fields]
    start = values[0] if values else None
    if start not in (0, 1) or values != list(range(start, start + len(values))):
        return False
    decimals = any(
        any(mark in field for mark in ".eE") for field in second[-len(fields) :]
    )
    return len(values) >= 3 or decimals


def _parses_as_data(fields):
    """Whether every field is a number literal (``nan`` too) and one is finite.

    Such a row is data (whose NaN the reader then refuses), not a header: a
    data row with a NaN must not be taken for column names and dropped.
    """
    try:
        values = [float(field) for field in fields]
    except ValueError:
        return False
    return any(math.isfinite(value) for value in values)


def _has_header(first, second):
    """Whether the first row of a table is a header (the usual case).

    It is when one of its fields is not a finite number in a column that holds
    a number on the next row (so ``nan`` and quoted names count as names), or
    when it is pandas' numeric header ``0, 1, 2...``, possibly after an empty
    field: the unnamed index column of ``DataFrame.to_csv()``.
    """
    if second is None:
        return not all(_is_number(field) for field in first)
    numeric = [j for j, field in enumerate(second) if _is_number(field)]
    if any(j < len(first) and not _is_number(first[j]) for j in numeric):
        return not _parses_as_data(first)
    names = first[1:] if first and first[0] == "" else first
    return _is_index_names(names, second)


def _column(spec, names, n_columns, option, path):
    """The index of the column ``spec`` names (a header name or a number)."""
    if names is not None and spec in names:
        return names.index(spec)
    try:
        index = int(spec)
    except ValueError:
        shown = ", ".join(repr(name) for name in (names or [])[:8])
        more = ", ..." if names is not None and len(names) > 8 else ""
        raise TableError(
            f"{option} {spec!r} is neither a column of {path.name}"
            + (f" ({shown}{more})" if names else "")
            + " nor a column number."
        ) from None
    if not -n_columns <= index < n_columns:
        raise TableError(
            f"{option} {index} is out of range: {path.name} has {n_columns} columns."
        )
    return index % n_columns


def _first_bad_line(path, suffix, gzipped, header_line, n_columns, numeric):
    """Describe the first line that does not parse (slow: only after a failure)."""
    for number, fields in _rows(path, suffix, gzipped):
        if number <= header_line:
            continue
        if len(fields) != n_columns:
            return (
                f"line {number} of {path.name} has {len(fields)} fields where the "
                f"first row has {n_columns}."
            )
        for j in numeric:
            if not _is_number(fields[j]):
                value = fields[j] or "an empty field"
                return (
                    f"line {number} of {path.name}, column {j}: {value!r} is not a "
                    "finite number (use --label-column or --id-column for a text "
                    "column)."
                )
    return None


class Table:
    """What a table holds: features, and the columns taken out of them."""

    def __init__(self, X, labels=None, ids=None, id_name="id"):
        self.X, self.labels, self.ids, self.id_name = X, labels, ids, id_name


def _read_text_table(path, suffix, gzipped, options):
    """Read a CSV/TSV/TXT table (gzipped or not) into a :class:`Table`."""
    import numpy as np

    rows = _rows(path, suffix, gzipped)
    try:
        first = next(rows, None)
        second = next(rows, None)
    except (UnicodeDecodeError, OSError, csv.Error) as exc:
        raise TableError(f"cannot read {path.name}: {exc}") from exc
    finally:
        rows.close()
    if first is None:
        raise TableError(f"{path.name} is empty.")
    header = {"yes": True, "no": False}.get(options.header)
    if header is None:
        header = _has_header(first[1], None if second is None else second[1])
    if header and second is None:
        raise TableError(f"{path.name} has a header row but no data rows.")
    names = first[1] if header else None
    n_columns = len(first[1])
    header_line = first[0] if header else 0

    text_columns = {}
    if options.label_column is not None:
        text_columns["labels"] = _column(
            options.label_column, names, n_columns, "--label-column", path
        )
    id_name = "id"
    if options.id_column is not None:
        text_columns["ids"] = _column(
            options.id_column, names, n_columns, "--id-column", path
        )
        id_name = names[text_columns["ids"]] if names else id_name
    elif names and names[0] == "":
        text_columns["ids"] = 0  # pandas' unnamed index: row ids, not a feature
    index_column = 0 if names and names[0] == "" else None
    skipped = set(text_columns.values()) | {index_column}
    numeric = [j for j in range(n_columns) if j not in skipped]
    if not numeric:
        raise TableError(f"{path.name} has no feature columns left.")

    pandas = _import_pandas()
    try:
        if pandas is not None:
            columns = _read_with_pandas(
                pandas, path, suffix, header_line, numeric, text_columns
            )
        else:
            columns = _read_with_numpy(path, suffix, header_line, numeric, text_columns)
    except (ValueError, OSError, UnicodeDecodeError, csv.Error) as exc:
        problem = _first_bad_line(
            path, suffix, gzipped, header_line, n_columns, numeric
        )
        raise TableError(problem or f"cannot read {path.name}: {exc}") from exc
    X = columns.pop("X")
    if not np.all(np.isfinite(X)):
        problem = _first_bad_line(
            path, suffix, gzipped, header_line, n_columns, numeric
        )
        raise TableError(problem or f"{path.name} holds NaN or infinite values.")
    return Table(X, columns.get("labels"), columns.get("ids"), id_name)


def _read_with_pandas(pandas, path, suffix, header_line, numeric, text_columns):
    """pandas' C parser: features as float64, text columns as str.

    Every column is read (no ``usecols``), so that a row with too many fields
    is an error rather than silently cut.
    """
    import numpy as np

    frame = pandas.read_csv(
        path,
        sep=_delimiter(suffix) or r"\s+",
        header=None,
        skiprows=range(header_line),
        dtype={j: str for j in text_columns.values()},
        keep_default_na=False,
        na_values=["", "NA", "NaN", "nan", "null"],
        skip_blank_lines=True,
        compression="gzip" if path.suffix.lower() == ".gz" else None,
        engine="c",
    )
    features = frame[numeric]
    for j in numeric:
        if not pandas.api.types.is_numeric_dtype(features[j].dtype):
            raise ValueError(f"column {j} is not numeric")
    out = {"X": features.to_numpy(dtype=np.float64)}
    for key, j in text_columns.items():
        out[key] = frame[j].fillna("").to_numpy(dtype=str)
    return out


def _read_with_numpy(path, suffix, header_line, numeric, text_columns):
    """numpy's C parser (``np.loadtxt``), when pandas is not installed.

    Without text columns every field is read, so that ragged rows are errors;
    with them the numbers are read by ``usecols``, which does not notice a
    row with extra fields (pandas does).
    """
    import numpy as np

    delimiter = _delimiter(suffix)
    options = {
        "delimiter": delimiter,
        "skiprows": header_line,
        "comments": None,
        "ndmin": 2,
        "encoding": "utf-8",
    }
    if delimiter is not None:
        options["quotechar"] = '"'
    usecols = numeric if text_columns else None
    out = {"X": np.loadtxt(path, usecols=usecols, dtype=np.float64, **options)}
    for key, j in text_columns.items():
        out[key] = np.loadtxt(path, usecols=[j], dtype=str, **options)[:, 0]
    return out


def _read_parquet(path, options):
    """Read a Parquet table (needs pandas and pyarrow or fastparquet)."""
    import numpy as np

    hint = "reading .parquet needs pandas and pyarrow: pip install pandas pyarrow"
    pandas = _import_pandas()
    if pandas is None:
        raise TableError(hint)
    try:
        frame = pandas.read_parquet(path)
    except ImportError as exc:
        raise TableError(hint) from exc
    except (OSError, ValueError) as exc:
        raise TableError(f"cannot read {path.name}: {exc}") from exc
    names = [str(name) for name in frame.columns]
    table = Table(None)
    taken = set()
    if options.label_column is not None:
        j = _column(options.label_column, names, len(names), "--label-column", path)
        table.labels = frame.iloc[:, j].astype(str).to_numpy()
        taken.add(j)
    if options.id_column is not None:
        j = _column(options.id_column, names, len(names), "--id-column", path)
        table.ids, table.id_name = frame.iloc[:, j].astype(str).to_numpy(), names[j]
        taken.add(j)
    elif not isinstance(frame.index, pandas.RangeIndex):
        table.ids = frame.index.astype(str).to_numpy()
        table.id_name = str(frame.index.name or "id")
    features = [j for j in range(len(names)) if j not in taken]
    for j in features:
        if not pandas.api.types.is_numeric_dtype(frame.dtypes.iloc[j]):
            raise TableError(
                f"column {names[j]!r} of {path.name} is not numeric; use "
                "--label-column or --id-column for it."
            )
    table.X = frame.iloc[:, features].to_numpy(dtype=np.float64)
    return table


def _read_arrays(path, suffix, options):
    """Read ``.npy`` or ``.npz`` input; labels and ids may be keys of an .npz."""
    import zipfile

    import numpy as np

    table = Table(None)
    try:
        if suffix == ".npy":
            table.X = np.load(path, allow_pickle=False)
            return table
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if not keys:
                raise TableError(f"{path.name} holds no arrays.")
            table.X = archive["X" if "X" in keys else keys[0]]
            if options.labels is not None and options.labels in keys:
                table.labels = archive[options.labels]
                options.labels = None
            if options.id_column is not None:
                if options.id_column not in keys:
                    raise TableError(
                        f"--id-column {options.id_column!r} is not a key of "
                        f"{path.name} ({', '.join(keys)})."
                    )
                table.ids, table.id_name = archive[options.id_column], options.id_column
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise TableError(
            f"cannot read {path.name}: not a valid {suffix} file ({exc})."
        ) from exc
    return table


def read_table(path, *, labels=None, label_column=None, id_column=None, header="auto"):
    """Read a data file into a :class:`Table`.

    Parameters
    ----------
    path : str or Path
        The file; its suffix says its format (see ``READABLE``).
    labels : str, default=None
        A key of an ``.npz`` input, or a ``.npy``/text file with one label per
        row.
    label_column : str, default=None
        The table column (name or number) holding labels.
    id_column : str, default=None
        The table column (or ``.npz`` key) holding row ids; a table's unnamed
        first column (pandas' index) is used when this is None.
    header : {"auto", "yes", "no"}, default="auto"
        Whether a text table starts with a header row.

    Returns
    -------
    table : Table
        ``X`` (numbers, as stored), ``labels`` and ``ids`` (or None) and
        ``id_name``.

    Raises
    ------
    TableError
        For any problem with the file, with one line naming it.
    """
    from types import SimpleNamespace

    options = SimpleNamespace(
        labels=labels, label_column=label_column, id_column=id_column, header=header
    )
    path = Path(path)
    suffix, gzipped = _kind(path)
    if suffix not in READABLE or (suffix in _BINARY and gzipped):
        raise TableError(
            f"cannot read {path.name}: the input must be one of "
            f"{', '.join(READABLE)}."
        )
    if not path.is_file():
        raise TableError(f"input file {path} does not exist.")
    if options.label_column is not None and suffix in (".npy", ".npz"):
        raise TableError(
            "--label-column is for tables (CSV, TSV, TXT, Parquet); for .npy/.npz "
            "use --labels."
        )
    if options.id_column is not None and suffix == ".npy":
        raise TableError("--id-column needs a table or an .npz input.")
    if suffix in _TEXT:
        table = _read_text_table(path, suffix, gzipped, options)
    elif suffix == ".parquet":
        table = _read_parquet(path, options)
    else:
        table = _read_arrays(path, suffix, options)
    if options.labels is not None:
        table.labels = _read_labels(Path(options.labels))
    return table


def _read_labels(path):
    """Read one label per row from a .npy or text file."""
    import numpy as np

    if not path.is_file():
        raise TableError(
            f"labels file {path} does not exist (or is not a key of the .npz)."
        )
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False).ravel()
        return np.atleast_1d(
            np.loadtxt(path, dtype=str, delimiter=_delimiter(_kind(path)[0]))
        )
    except (OSError, ValueError) as exc:
        raise TableError(f"cannot read labels from {path.name}: {exc}") from exc


def write_table(path, Y, ids, id_name, float_format):
    """Write the embedding to ``.npy`` or a delimited text file."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npy":
        np.save(path, Y)
        return
    delimiter = _delimiter(path.suffix.lower()) or " "
    names = [f"tsne{i}" for i in range(Y.shape[1])]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        if ids is None:
            np.savetxt(
                handle,
                Y,
                fmt=float_format,
                delimiter=delimiter,
                header=delimiter.join(names),
                comments="",
            )
            return
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerow([id_name, *names])
        writer.writerows(
            [row_id, *(float_format % value for value in row)]
            for row_id, row in zip(np.asarray(ids).astype(str), Y.tolist())
        )
