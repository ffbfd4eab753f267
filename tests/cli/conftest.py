from tests.ground_truth import gt_dirs, triples_dir  # noqa: F401  (fixtures)
