"""Class names, palettes and fixed label tables of the NYUDv2 and PASCAL-Context multi-task data.

Everything here is a constant restated from the reference implementation's data code (see
docs/differences.md) or from the public definitions of the datasets (the NYUv2 40-class set of
Gupta et al., the 21 PASCAL VOC classes).
"""
from typing import Dict, List, Tuple

__all__ = [
    'NYUD_CLASSES', 'NYUD_PALETTE', 'VOC_CLASSES', 'VOC_PALETTE', 'HUMAN_PART_CLASSES',
    'HUMAN_PART_PALETTE', 'PASCAL_PART_GROUPS', 'PERSON_CLASS_ID',
    'VOC_CONTEXT_IDS', 'PASCAL_NORMALS_VALID_CONTEXT_IDS', 'voc_colormap'
]


def voc_colormap(num: int) -> List[Tuple[int, int, int]]:
    """The standard PASCAL VOC colour map (bit-interleaved), first ``num`` entries.

    Kept here rather than taking mmseg's ``get_palette('voc')`` (the same first 21 colours,
    tested): NYUD needs 41 entries, and ``mmseg.utils`` cannot be imported before mmcv's
    compiled-ops placeholder is installed.
    """
    colours = []
    for i in range(num):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours.append((r, g, b))
    return colours


#: The 40 NYUv2 classes (Gupta et al. 2013), in label order: PNG value v in 1..40 is class v-1.
NYUD_CLASSES = (
    'wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window', 'bookshelf',
    'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser', 'pillow', 'mirror',
    'floor mat', 'clothes', 'ceiling', 'books', 'refrigerator', 'television', 'paper', 'towel',
    'shower curtain', 'box', 'whiteboard', 'person', 'night stand', 'toilet', 'sink', 'lamp',
    'bathtub', 'bag', 'otherstructure', 'otherfurniture', 'otherprop')
#: VOC colour map entries 1..40 (entry 0, black, is the unlabelled colour).
NYUD_PALETTE = tuple(voc_colormap(41)[1:])

#: The 21 PASCAL VOC classes (background first), the PASCAL-Context multi-task semseg labels.
VOC_CLASSES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
    'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
    'train', 'tvmonitor')
VOC_PALETTE = tuple(voc_colormap(21))

#: Human-part classes (background + 6 groups), in label order.
HUMAN_PART_CLASSES = ('background', 'head', 'torso', 'uarm', 'larm', 'uleg', 'lleg')
HUMAN_PART_PALETTE = tuple(voc_colormap(7))

#: PASCAL-Part fine part names of a person, grouped into the 6 human-part labels
#: (docs/differences.md).
#: Any other part name maps to 0 (background).
PASCAL_PART_GROUPS: Dict[str, int] = {
    **{n: 1 for n in ('hair', 'head', 'lear', 'rear', 'lebrow', 'rebrow', 'leye', 'reye',
                      'mouth', 'nose')},
    **{n: 2 for n in ('torso', 'neck')},
    **{n: 3 for n in ('luarm', 'ruarm')},
    **{n: 4 for n in ('llarm', 'rlarm', 'lhand', 'rhand')},
    **{n: 5 for n in ('luleg', 'ruleg')},
    **{n: 6 for n in ('llleg', 'rlleg', 'lfoot', 'rfoot')},
}

#: VOC class index of 'person' (the PASCAL-Part object class whose parts are used).
PERSON_CLASS_ID = 15

#: PASCAL-Context (459-class) id of each VOC class, indexed by VOC label (docs/differences.md).
VOC_CONTEXT_IDS = (0, 2, 23, 25, 31, 34, 45, 59, 65, 72, 98, 397, 113, 207, 258, 284, 308, 347,
                   368, 416, 427)

#: The 170 PASCAL-Context classes on which distilled normals are supervised (docs/differences.md).
PASCAL_NORMALS_VALID_CONTEXT_IDS = (
    3, 4, 6, 9, 10, 11, 13, 15, 17, 18, 22, 23, 29, 30, 33, 34, 36, 37, 38, 39, 41, 43, 46, 49,
    50, 51, 53, 55, 56, 59, 61, 62, 65, 66, 68, 69, 72, 73, 78, 83, 84, 85, 87, 88, 95, 96, 101,
    104, 105, 107, 111, 113, 115, 122, 124, 135, 141, 142, 143, 146, 150, 154, 157, 158, 159,
    165, 172, 174, 181, 183, 184, 191, 193, 195, 197, 199, 202, 213, 215, 216, 219, 220, 223,
    225, 228, 230, 232, 233, 238, 239, 242, 243, 246, 250, 251, 252, 255, 260, 261, 263, 269,
    272, 273, 275, 281, 283, 284, 285, 286, 287, 288, 290, 291, 292, 293, 295, 304, 307, 309,
    310, 314, 315, 319, 323, 329, 330, 331, 336, 342, 345, 349, 350, 351, 352, 355, 357, 368,
    370, 371, 374, 379, 380, 383, 384, 397, 401, 403, 405, 407, 408, 411, 412, 413, 414, 417,
    419, 421, 423, 427, 429, 430, 432, 440, 441, 442, 443, 444, 446, 454, 457)
assert len(PASCAL_NORMALS_VALID_CONTEXT_IDS) == 170
