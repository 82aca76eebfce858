"""The config files a process composes from, each read once while it is unchanged.

Hydra reads and parses every YAML file of a job's defaults anew for each composition, and before
each one deep-copies its repository of config sources, the ConfigStore with every schema included.
A sweep composes hundreds of jobs from the same few dozen files, the tests thousands, and each
`src/run.py` composes its job once more (a forked process inherits what its parent read). Every
config loader this process builds (`hydra.main`, `hydra.compose`, the sweeper's) therefore reads
through one cache: a file is parsed once, and each composition gets its own copy of it (Hydra
merges the loaded nodes into the job's config without copying them). An entry holds for the search
path it was read under; a file whose size or modification time has changed since, or that is gone,
is read again. The ConfigStore's entries (the schemas) and packaged configs are taken as fixed once
read: they are registered at import. Only for the pinned Hydra (1.3), whose loader builds its
repository in its constructor and copies it per composition as written here.
"""
import copy
import functools
import os
import pickle

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import CachingConfigRepository

# (the search path's sources, a config's path) -> (its file or None, the file's stamp, the pickled ConfigResult)
READ_CONFIGS = {}
FILE_SCHEME = "file://"


def _stamp(path):
    """What says a file has changed (None: gone)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size, status.st_ino


class SharedReadsRepository(CachingConfigRepository):
    """Hydra's caching repository whose reads outlive one composition (built by process_wide_reads).
    Hydra deep-copies the repository at the start of every composition, to re-initialise the copy's
    sources from the primary config's search path; the copy is a shallow copy of the delegate here
    (the sources become a new list on it), which leaves the ConfigStore uncopied."""

    def __deepcopy__(self, memo):
        return process_wide_reads(copy.copy(self.delegate))

    def load_config(self, config_path):
        key = (tuple((type(source).__name__, source.path) for source in self.delegate.get_sources()), config_path)
        kept = READ_CONFIGS.get(key)
        if kept is not None and (kept[0] is None or _stamp(kept[0]) == kept[1]):
            # unpickling a config is several times cheaper than deep-copying it
            return pickle.loads(kept[2])
        result = self.delegate.load_config(config_path=config_path)
        if result is None:   # not on the search path (yet): looked for again next time
            return result
        try:
            kept = pickle.dumps(result)
        except pickle.PicklingError:
            # a ConfigStore node typed by a class that Hydra's plugin scan has since replaced by
            # executing its module again (the sweeper's, in a joblib worker given its launcher's
            # ConfigStore): read from the store each time
            return result
        path = None
        if result.path.startswith(FILE_SCHEME):
            name = config_path if config_path.endswith(".yaml") else f"{config_path}.yaml"
            path = os.path.join(result.path[len(FILE_SCHEME):], name)
        READ_CONFIGS[key] = (path, _stamp(path) if path else None, kept)
        return result


def process_wide_reads(repository):
    """`repository` reading through this process's cache, built as its own copies are: around the
    repository itself. The constructor would deep-copy it, the ConfigStore included, to keep
    initialize_sources from changing it; Hydra only ever calls that on the copy it composes from
    (ConfigLoaderImpl._parse_overrides_and_create_caching_repo)."""
    shared = SharedReadsRepository.__new__(SharedReadsRepository)
    shared.delegate = repository   # no per-composition cache of its own: every load goes to READ_CONFIGS
    return shared


def share_config_reads():
    """Every Hydra config loader built in this process from now on reads through the cache."""
    import hydra

    if not hydra.__version__.startswith("1.3.") or getattr(ConfigLoaderImpl.__init__, "reads_shared", False):
        return
    built = ConfigLoaderImpl.__init__

    @functools.wraps(built)
    def build(loader, *args, **kwargs):
        built(loader, *args, **kwargs)
        loader.repository = process_wide_reads(loader.repository)

    build.reads_shared = True
    ConfigLoaderImpl.__init__ = build
