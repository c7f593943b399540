"""
==========================
The command line
==========================

``fasttsne embed`` reads a data file, embeds its rows and writes the
embedding, with the row ids first, and a picture. The shell command run
below is::

    fasttsne embed digits.csv -o embedding.csv --label-column digit \\
        --plot embedding.png --random-state 0

A CSV's first row is its header; a column of labels (``--label-column``) or
of row ids (``--id-column``, or pandas' unnamed index column) is not a
feature. ``fasttsne embed --help`` lists every option with its default;
``fasttsne demo`` embeds the digits without a file.
"""

import csv
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits

from fasttsne.cli import main

digits = load_digits()
folder = Path(tempfile.mkdtemp())
with open(folder / "digits.csv", "w", newline="", encoding="utf-8") as handle:
    writer = csv.writer(handle)
    writer.writerow(["image", "digit", *digits.feature_names])
    for i, (row, digit) in enumerate(zip(digits.data, digits.target)):
        writer.writerow([f"img{i:04d}", digit, *row])

status = main(
    [
        "embed",
        str(folder / "digits.csv"),
        "-o",
        str(folder / "embedding.csv"),
        "--id-column",
        "image",
        "--label-column",
        "digit",
        "--plot",
        str(folder / "embedding.png"),
        "--random-state",
        "0",
    ]
)
print("exit status", status)
print("".join((folder / "embedding.csv").read_text().splitlines(keepends=True)[:4]))

# %%
# The picture the command wrote:
fig, ax = plt.subplots(figsize=(7, 6.5))
ax.imshow(plt.imread(folder / "embedding.png"))
ax.axis("off")
plt.show()
