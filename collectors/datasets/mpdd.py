"""MPDD, the Metal Parts Defect Detection dataset (Jezek et al., ICUMT 2021).

Publisher's layout (github.com/stepanje/MPDD, "the same structure as MVTec AD"):

    <category>/train/good/NNN.png
    <category>/test/good/NNN.png
    <category>/test/<defect>/NNN.png
    <category>/ground_truth/<defect>/NNN_mask.png

Categories: bracket_black, bracket_brown, bracket_white, connector, metal_plate, tubes.
The source label is `<category>/<defect>`; the reader is MVTec AD's.
"""

from __future__ import annotations

from .mvtec_ad import MVTecLikeAdapter


class MPDD(MVTecLikeAdapter):
    name = "mpdd"
    layout = "MPDD's layout <category>/test/<defect>/NNN.png with masks <category>/ground_truth/<defect>/NNN_mask.png (categories bracket_black, ..., tubes)"
    categories = ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes")
