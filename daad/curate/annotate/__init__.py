"""Masks drawn by people: Label Studio projects fed from the catalog, and a box-to-mask assist.

`tasks.send` / `tasks.load` (samples out, drawn masks back, through the catalog API),
`label_studio` (finding or starting a server, its REST API), `brush_rle` (Label Studio's
brush mask format), `assist` (an ML backend turning a box or clicks into a mask with
grabCut), `selection` (which samples: ids, filters, review queues). A second annotation
tool plugs in as a module beside `label_studio` with the same send/load pair.
"""
