from tests.video.clips import clip_factory, fast_matter  # noqa: F401  (fixtures)
