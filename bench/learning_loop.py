"""Simulation of the learning loop on the NIH sample: does a clinic's signed-off readings help the model?

    .venv/bin/python -m bench.learning_loop [--size 64] [--epochs 30] [--clinic-share 0.5] [--seed 0]
                                            [--work DIR] [--data-dir NIH]

1. The sample's patients are split once by patient (seed): test patients, and train-val patients.
   ``--clinic-share`` of the train-val patients become the "clinic"; the rest are the NIH part.
2. Before: the NIH part alone (its own folder in the NIH layout, official lists keeping the test
   patients in test) is preprocessed and a network trained on it.
3. The clinic's images are stored as X-rays of new patients in a throw-away Dispredo database and
   read as a clinic would: a reader signs off each one (the simulated reader marks the NIH labels),
   then ``export_readings`` writes them out, pseudonymised, in the NIH layout.
4. After: the NIH part plus the export are preprocessed together (the export's images all in
   train-val) and a network trained with the same settings and seed.
5. Both versions are scored on the same test patients, which neither trained on; the script prints
   the test split's mean AUROC before and after, and the difference with its paired
   patient-bootstrap interval (``manage.py compare``'s own function).

Everything is written under ``--work`` (a temporary folder by default, removed at the end), never
into the installation's database or model folder. Training takes minutes per network on 2 cores.
"""

import argparse
import csv
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench._common import machine, machine_line, nih_sample

READER = "simulated-reader"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.learning_loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="NIH folder (default: the sample).")
    parser.add_argument("--size", type=int, default=64, help="Input size in pixels (default 64, the shipped model's).")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--clinic-share", type=float, default=0.5, help="Share of the train-val patients read by the clinic.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="Working folder (default: a temporary one, removed).")
    args = parser.parse_args(argv)
    if not 0 < args.clinic_share < 1:
        parser.error(f"--clinic-share must be between 0 and 1, not {args.clinic_share}.")
    return args


def setup_django(work):
    """Django on a fresh SQLite database and model folder under ``work``."""
    for name in ("DATABASE_URL", "DISPREDO_MEDIA_ROOT", "DISPREDO_MODEL_DIR", "DISPREDO_MLTRAIN_DIR"):
        os.environ.pop(name, None)
    os.environ.update(DJANGO_SETTINGS_MODULE="dispredo_site.settings", DISPREDO_DATA_DIR=str(work / "var"))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def read_sample(data_dir):
    """``(header, {image name: label-file row}, {image name: path})`` of the images found."""
    from mltrain import nih

    label_file = nih.find_label_file(data_dir)
    with open(label_file, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = {row[0]: row for row in reader if row}
    on_disk = nih.find_images(data_dir)
    return header, {name: rows[name] for name in on_disk if name in rows}, on_disk


def split_patients(rows, share, seed):
    """``(test names, NIH-part names, clinic names)``: test by the usual grouped split, the clinic a
    ``share`` of the remaining patients."""
    import numpy as np

    from mltrain import splits

    names = sorted(rows)
    patients = np.array([int(rows[name][3]) for name in names])
    by_split = splits.grouped_split(patients, seed=seed)
    test = [names[i] for i in by_split["test"]]
    rest = sorted(set(range(len(names))) - set(by_split["test"]))
    nih_rows, clinic_rows = splits.carve(patients[rest], share, seed)
    return test, [names[rest[i]] for i in nih_rows], [names[rest[i]] for i in clinic_rows]


def write_nih_folder(folder, header, rows, paths, train_val, test):
    """An NIH-layout folder of links to the images, with official lists fixing the test patients."""
    images = folder / "images_001" / "images"
    images.mkdir(parents=True)
    for name in train_val + test:
        os.symlink(paths[name], images / name)
    with open(folder / "Data_Entry_2017.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows[name] for name in sorted(train_val + test))
    (folder / "train_val_list.txt").write_text("".join(f"{name}\n" for name in sorted(train_val)))
    (folder / "test_list.txt").write_text("".join(f"{name}\n" for name in sorted(test)))
    return folder


def read_as_a_clinic(rows, paths, names):
    """Store ``names`` as X-rays of new patients and sign off a reading of each with its NIH labels."""
    import datetime

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from diagnosis.intake.storing import store_xray
    from diagnosis.readings import rules as readings
    from diagnosis.readings.models import Mark
    from diagnosis.records.models import Patient
    from dispredo_core.findings import FINDINGS
    from dispredo_core.imaging import open_xray

    reader = get_user_model().objects.create_user(READER, is_staff=True)
    reader.groups.add(Group.objects.get(name="Readers"))
    reader = get_user_model().objects.get(pk=reader.pk)  # fresh permission cache
    today = datetime.date.today()
    patients = {}
    for name in names:
        row = rows[name]
        labels = set(row[1].split("|"))
        if row[3] not in patients:
            age = int(float(row[4] or 0))
            patients[row[3]] = Patient.objects.create(
                mrn=f"SIM-{row[3]}",
                name=f"Simulated patient {row[3]}",
                sex=row[5] if row[5] in ("M", "F") else "U",
                date_of_birth=today.replace(year=today.year - age) if 0 < age < 100 else None,
            )
        data = Path(paths[name]).read_bytes()
        xray = store_xray(
            patient=patients[row[3]], data=data, original_name=name, image=open_xray(data), uploaded_by=reader,
            view_position=row[6] if row[6] in ("PA", "AP") else "",
        )
        marks = {finding: Mark.PRESENT if finding in labels else Mark.ABSENT for finding in FINDINGS}
        readings.sign_off(xray, reader, marks, "Simulated reading: the NIH labels.")
    return reader


def train_version(data_dir, name, args, out):
    from mltrain.config import TrainConfig
    from mltrain.registry import train_and_register

    config = TrainConfig(
        strategy="multilabel", size=args.size, epochs=args.epochs, patience=args.patience, seed=args.seed,
        data_dir=str(data_dir), output_dir=str(out), name=name,
    )
    started = time.perf_counter()
    version = train_and_register(config, stdout=open(os.devnull, "w"), verbosity=0)
    return version, time.perf_counter() - started


def main(argv=None):
    args = parse_args(argv)
    data_dir = (args.data_dir or nih_sample()).expanduser().resolve()
    work = args.work.expanduser().resolve() if args.work else Path(tempfile.mkdtemp(prefix="dispredo-loop-"))
    work.mkdir(parents=True, exist_ok=True)
    print(machine_line(machine()))
    print(f"Working in {work}")
    try:
        setup_django(work)
        from dispredo_core.comparison import table_lines
        from mltrain.comparison import compare_versions
        from mltrain.preprocess import preprocess
        from mltrain.readings_export import export_readings

        header, rows, paths = read_sample(data_dir)
        test, nih_part, clinic = split_patients(rows, args.clinic_share, args.seed)
        count = lambda names: f"{len(names)} images of {len({rows[n][3] for n in names})} patients"  # noqa: E731
        print(f"Test: {count(test)}; NIH part: {count(nih_part)}; clinic: {count(clinic)}")

        nih_folder = write_nih_folder(work / "nih-part", header, rows, paths, nih_part, test)
        before_data = work / "preprocessed-before"
        preprocess(nih_folder, before_data, size=args.size, seed=args.seed, progress=False)
        before, before_seconds = train_version(before_data, "loop-before", args, work / "models")
        print(f"Before: trained on the NIH part in {before_seconds:.0f} s")

        started = time.perf_counter()
        reader = read_as_a_clinic(rows, paths, clinic)
        export = export_readings(work / "export", user=reader)
        # The clinic's images train; the test patients stay the NIH part's own.
        exported = sorted(p.name for p in (work / "export").glob("images_*/images/*.png"))
        (work / "export" / "train_val_list.txt").write_text("".join(f"{name}\n" for name in exported))
        (work / "export" / "test_list.txt").write_text("")
        print(
            f"Clinic: {export.images} readings signed off and exported ({export.patients} pseudonymised patients) "
            f"in {time.perf_counter() - started:.0f} s"
        )

        after_data = work / "preprocessed-after"
        preprocess([nih_folder, work / "export"], after_data, size=args.size, seed=args.seed, progress=False)
        after, after_seconds = train_version(after_data, "loop-after", args, work / "models")
        print(f"After: trained on the NIH part and the clinic's readings in {after_seconds:.0f} s")

        result = compare_versions(after, against=before, data_dir=before_data, split="test")
        comparison = result["comparison"]
        print()
        print(
            f"Test split: {comparison['images']} images of {comparison['patients']} patients neither network trained "
            f"on; after (candidate) against before:"
        )
        for line in table_lines(comparison, "after", "before"):
            print(line)
        mean = comparison["mean"]
        print(
            f"\nMean AUROC on the test patients: before {mean['against']:.3f}, after {mean['candidate']:.3f}; "
            f"difference {mean['difference']:+.3f} (95 % paired patient-bootstrap interval "
            f"{mean['low']:+.3f} to {mean['high']:+.3f})."
        )
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
