"""The label sets every part of persona agrees on."""

#: the paper's six emotions (CREMA-D's); other corpora's extra emotions are masked out of training
EMOTIONS = ("anger", "disgust", "fear", "happy", "neutral", "sad")
GENDERS = ("female", "male")
#: the three heads of the network, each scored and reported on its own
TASKS = ("emotion", "gender", "age")

#: class index of a missing label (emotion, gender); a missing age is NaN
MISSING = -1

#: emotion_raw of a clip labelled neutral only because its corpus is read speech (`--weak-neutral`):
#: such labels train the emotion head but are never scored, so no report mistakes them for a judgement
WEAK_NEUTRAL = "(weak: read speech)"
