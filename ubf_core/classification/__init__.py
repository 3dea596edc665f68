"""The downstream classification experiment: do synthetic HSIs help a classifier trained on scarce, imbalanced
real patches? (UBF, CVPR 2024; MSF-Diff, Information Fusion 2024.)

- :mod:`~ubf_core.classification.models`: :func:`make_classifier` (``cnn``, ``spectral_resnet``), input
  (n, C, H, W) float32 reflectance → (n, K) logits;
- :mod:`~ubf_core.classification.augment`: :func:`classic_augment` (flip, rot90, affine) driven by a torch.Generator;
- :mod:`~ubf_core.classification.training`: :func:`train_classifier`, :func:`evaluate` (overall / per-class accuracy);
- :mod:`~ubf_core.classification.labelled`: the labelled real set — scene patches split by whole scene
  (:func:`split_by_scene`, :func:`pick_test_scenes`) or a user's class-folder set (:func:`read_labelled_folder`);
- :mod:`~ubf_core.classification.experiment`: :func:`run_experiment` over arms × models × seeds, and the reports
  :func:`results_table_markdown`, :func:`results_metrics`.

Pure library: no Prefect, MLflow or DVC here.
"""

from ubf_core.classification.augment import AugmentOptions, classic_augment
from ubf_core.classification.experiment import (ARM_LABELS, ARMS, PAPER_REFERENCE, ExperimentResult,
                                                ExperimentSettings, class_balanced_counts, hsi_labels,
                                                map_rgb_classes, results_metrics, results_table_markdown,
                                                rgb_sample_counts, run_experiment, select_synthetic)
from ubf_core.classification.labelled import (LabelledPatches, class_labels, labelled_from_scenes, pick_test_scenes,
                                              read_labelled_folder, scene_class, scene_classes, split_by_scene,
                                              write_labelled_folder)
from ubf_core.classification.models import CLASSIFIERS, make_classifier
from ubf_core.classification.training import TrainResult, class_weights, evaluate, predict, train_classifier

__all__ = ["ARMS", "ARM_LABELS", "AugmentOptions", "CLASSIFIERS", "ExperimentResult", "ExperimentSettings",
           "LabelledPatches", "PAPER_REFERENCE", "TrainResult", "class_balanced_counts", "class_labels",
           "class_weights", "classic_augment", "evaluate", "hsi_labels", "labelled_from_scenes", "make_classifier",
           "map_rgb_classes", "pick_test_scenes", "predict", "read_labelled_folder", "results_metrics",
           "results_table_markdown", "rgb_sample_counts", "run_experiment", "scene_class", "scene_classes",
           "select_synthetic", "split_by_scene", "train_classifier", "write_labelled_folder"]
