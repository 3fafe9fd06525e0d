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
    title = "MPDD"
    license = "terms:mpdd"
    attribution = "MPDD, Brno University of Technology (Jezek et al., ICUMT 2021); research use with citation (no licence file published)"
    citation_key = "jezek2021mpdd"
    citation = (
        "Stepan Jezek, Martin Jonak, Radim Burget, Pavel Dvorak, Milos Skotak. Deep learning-based defect "
        "detection of metal parts: evaluating current methods in complex conditions. ICUMT 2021, pp. 66-71."
    )
    homepage = "https://github.com/stepanje/MPDD"
    layout = "MPDD's layout <category>/test/<defect>/NNN.png with masks <category>/ground_truth/<defect>/NNN_mask.png (categories bracket_black, ..., tubes)"
    categories = ("bracket_black", "bracket_brown", "bracket_white", "connector", "metal_plate", "tubes")
