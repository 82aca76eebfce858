"""The paper-scale ImageNet path (ImageFolder on disk, torchvision ResNet, DDP) on a tiny generated
tree of real JPEG files: an update through the engine, on CPU."""
import pytest
import torch
from test_engine_distributed import final_params

from codistill_experiments.data_checks import check_imagefolder_root
from codistill_experiments.preflight import write_imagefolder

CLASSES = ("n01440764", "n01443537")


def make_tree(root, per_class):
    return write_imagefolder(root, per_class, CLASSES)


def tiny_imagenet_job(root, *extra):
    # 4 training images, 2 ranks x 2 images per model -> 1 update in one epoch (on a CPU without
    # bfloat16 convolutions an update of the amp=true run costs seconds a rank).
    return ["scale=paper", "method=allreduce", f"workload.data_root={root}", "workload.arch=resnet18",
            "workload.num_classes=2", "workload.loader_workers=0", "workload.eval_batch=2",
            "scale.ranks_per_model=2", "scale.ranks_per_node=2", "scale.batch_per_rank=2",
            "schedule.epochs=1", "schedule.lr.warmup_epochs=0", "schedule.lr.milestones=[]",
            "scale.gpus_per_rank=0", *extra]   # on CPU by request: a job asking for GPUs where CUDA has none refuses


def test_a_tree_without_val_or_with_other_classes_is_refused(tmp_path):
    root = make_tree(tmp_path / "imagenet", {"train": 1})
    assert "val/<class>/<image>.JPEG" in check_imagefolder_root(root)
    from omegaconf import OmegaConf

    from codistill_experiments.vision.workloads import imagenet

    make_tree(tmp_path / "other", {"train": 1, "val": 1})
    with pytest.raises(ValueError, match="num_classes=1000"):
        imagenet(OmegaConf.create({"data_root": str(tmp_path / "other"), "arch": "resnet18", "num_classes": 1000}))


@pytest.mark.slow
def test_channels_last_and_mixed_precision_options_run_on_cpu(tmp_path, run_job):
    root = make_tree(tmp_path / "imagenet", {"train": 2, "val": 1})
    default, _ = run_job(tiny_imagenet_job(root, "seed=1"))
    channels_last, _ = run_job(tiny_imagenet_job(root, "seed=1", "workload.channels_last=true"))
    bfloat16, _ = run_job(tiny_imagenet_job(root, "seed=1", "workload.amp=true"))
    reference = final_params(default, 0)
    # Same arithmetic in another memory layout: equal up to float32 summation order.
    torch.testing.assert_close(final_params(channels_last, 0), reference, rtol=1e-3, atol=1e-3)
    # bfloat16 autocast really changes the arithmetic, yet stays near the float32 result.
    difference = (final_params(bfloat16, 0) - reference).abs().max().item()
    assert 0 < difference < 0.05


def test_an_imagefolder_is_scanned_once_per_machine_until_a_class_folder_changes(tmp_path, monkeypatch):
    import torchvision

    from codistill_experiments import datasets
    from codistill_experiments.vision.file_datasets import ScannedImageFolder as folder

    root = make_tree(tmp_path / "imagenet", {"train": 2})
    monkeypatch.setattr(datasets, "SCAN_CACHE", tmp_path / "scans")
    scans = []
    original = torchvision.datasets.ImageFolder.make_dataset

    def counted(*args, **kwargs):
        scans.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(torchvision.datasets.ImageFolder, "make_dataset", staticmethod(counted))
    first, second = folder(root / "train"), folder(root / "train")   # two ranks of one machine
    plain = sorted(original(str(root / "train"), first.class_to_idx, extensions=torchvision.datasets.folder.IMG_EXTENSIONS))
    assert len(scans) == 1 and first.samples == second.samples == plain and len(plain) == 4
    make_tree(tmp_path / "more", {"train": 1})
    (tmp_path / "more" / "train" / CLASSES[0] / f"{CLASSES[0]}_0.JPEG").rename(
        root / "train" / CLASSES[0] / "added.JPEG")                   # a new file: its class folder changed
    third = folder(root / "train")
    assert len(scans) == 2 and len(third.samples) == 5


@pytest.mark.slow
def test_the_file_data_sets_reach_a_spawned_loader_worker(tmp_path, monkeypatch):
    """A rank spawned on a machine with GPUs starts its loader workers by spawn, which pickles the
    data set (a class made inside a function cannot be: every such ImageNet and CIFAR-10 run
    stopped at its first batch, seen on an H200). Each worker's batch equals the one read here."""
    from omegaconf import OmegaConf
    from torch.utils.data import DataLoader

    from codistill_experiments import datasets
    from codistill_experiments.preflight import write_cifar_batches
    from codistill_experiments.training.sampling import SeededAugmentation, SeededBatch
    from codistill_experiments.vision.workloads import cifar10, imagenet

    monkeypatch.setattr(datasets, "SCAN_CACHE", tmp_path / "scans")
    folder = make_tree(tmp_path / "imagenet", {"train": 2, "val": 1})
    image_net = imagenet(OmegaConf.create({"data_root": str(folder), "arch": "resnet18", "num_classes": 2}))
    cifar = cifar10(OmegaConf.create({"data_root": str(write_cifar_batches(tmp_path / "cifar", per_batch=2)),
                                      "depth": 10, "widen": 1, "num_classes": 10, "scenario": "full"}))
    batch = SeededBatch([1, 0], seed=7)   # the batch's random crops and flips drawn from its seed
    data_sets = (image_net.train_set, cifar.train_set)
    # both workers start before either is read: each spawned interpreter imports torch again
    loaders = [iter(DataLoader(SeededAugmentation(data_set), batch_sampler=[batch], num_workers=1,
                               multiprocessing_context="spawn")) for data_set in data_sets]
    for data_set, loader in zip(data_sets, loaders):
        images, labels = next(loader)
        expected = SeededAugmentation(data_set).__getitems__(batch)
        assert torch.equal(images, torch.stack([image for image, _ in expected]))
        assert labels.tolist() == [label for _, label in expected]
