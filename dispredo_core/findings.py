"""The 14 findings of NIH ChestX-ray14, in the one order every part of Dispredo uses.

Models store their labels with their weights; code looks a finding up by name
(``FINDINGS.index(name)``), never by a bare number.
"""

FINDINGS = (
    "Atelectasis",
    "Consolidation",
    "Infiltration",
    "Pneumothorax",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Effusion",
    "Pneumonia",
    "Pleural_Thickening",
    "Cardiomegaly",
    "Nodule",
    "Mass",
    "Hernia",
)

# The dataset's label for an image with none of the findings.
NO_FINDING = "No Finding"

# Human-readable names for pages ("Pleural_Thickening" -> "Pleural thickening").
DISPLAY_NAMES = {name: name.replace("_", " ").capitalize() for name in FINDINGS}
