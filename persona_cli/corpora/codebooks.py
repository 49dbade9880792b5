"""How each corpus's own codes and words map onto persona's labels (persona_cli/labels.py), and the speaker
facts some corpora publish only in their papers.

Each emotion code maps to (the corpus's own English label, one of EMOTIONS or None). None marks
emotions outside the paper's six: the clip still trains gender and age, and reports still see the
raw label.
"""

from persona_cli.labels import EMOTIONS

RAVDESS_EMOTIONS = {
    "01": ("neutral", "neutral"),
    "02": ("calm", None),
    "03": ("happy", "happy"),
    "04": ("sad", "sad"),
    "05": ("angry", "anger"),
    "06": ("fearful", "fear"),
    "07": ("disgust", "disgust"),
    "08": ("surprised", None),
}
EMODB_EMOTIONS = {  # German initials: Wut, Langeweile, Ekel, Angst, Freude, Trauer, Neutral
    "W": ("anger", "anger"),
    "L": ("boredom", None),
    "E": ("disgust", "disgust"),
    "A": ("fear", "fear"),
    "F": ("happiness", "happy"),
    "T": ("sadness", "sad"),
    "N": ("neutral", "neutral"),
}
CREMA_EMOTIONS = {
    "ANG": ("anger", "anger"),
    "DIS": ("disgust", "disgust"),
    "FEA": ("fear", "fear"),
    "HAP": ("happy", "happy"),
    "NEU": ("neutral", "neutral"),
    "SAD": ("sad", "sad"),
}
TESS_EMOTIONS = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happy",
    "neutral": "neutral",
    "sad": "sad",
    "ps": None,  # pleasant surprise
}
# Free-text labels a manifest may use; anything else is kept as emotion_raw and masked.
EMOTION_SYNONYMS = {
    **{e: e for e in EMOTIONS},
    "angry": "anger",
    "disgusted": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "happiness": "happy",
    "sadness": "sad",
    **{code.lower(): mapped for code, (_, mapped) in CREMA_EMOTIONS.items()},
}
# Common Voice before v10 says male/female; later releases say male_masculine/female_feminine and
# add other answers (intersex, non-binary, ...) that the two-class gender head cannot learn from.
GENDER_SYNONYMS = {
    "female": "female",
    "male": "male",
    "f": "female",
    "m": "male",
    "female_feminine": "female",
    "male_masculine": "male",
}
# Common Voice age buckets -> mid-point in years; "fourties" is Common Voice's own spelling.
AGE_BUCKETS = {
    "teens": 16.0,
    "twenties": 25.0,
    "thirties": 35.0,
    "fourties": 45.0,
    "forties": 45.0,
    "fifties": 55.0,
    "sixties": 65.0,
    "seventies": 75.0,
    "eighties": 85.0,
    "nineties": 95.0,
}
# Published EmoDB speaker table (Burkhardt et al. 2005), for copies without speakers.csv.
EMODB_SPEAKERS = {
    "03": ("male", 31.0),
    "08": ("female", 34.0),
    "09": ("female", 21.0),
    "10": ("male", 32.0),
    "11": ("male", 26.0),
    "12": ("male", 30.0),
    "13": ("female", 32.0),
    "14": ("female", 35.0),
    "15": ("male", 25.0),
    "16": ("female", 31.0),
}
TESS_SPEAKER_AGES = {"OAF": 64.0, "YAF": 26.0}  # the older and the younger actress, both female
# ASED: the emotion letter and folder number that start each name (n1-... lies in 01Neutral/).
ASED_EMOTIONS = {
    "n1": ("neutral", "neutral"),
    "f2": ("fearful", "fear"),
    "h3": ("happy", "happy"),
    "s4": ("sad", "sad"),
    "a5": ("angry", "anger"),
}
ASED_SEXES = {"01": "female", "02": "male"}
URDU_EMOTIONS = {  # the letter before the running number; the folder says the same
    "A": ("angry", "anger"),
    "H": ("happy", "happy"),
    "N": ("neutral", "neutral"),
    "S": ("sad", "sad"),
}
# BAVED labels intensity, not category: level 0 is low emotion (tired, down) and level 2 strong
# emotion of any kind (happy, angry, sad...), so neither says which of the six it is. Level 1 is the
# speaker's everyday voice, which is what the other corpora call neutral.
BAVED_LEVELS = {
    "0": ("level 0", None),
    "1": ("level 1", "neutral"),
    "2": ("level 2", None),
}
# BAVED speaker 53's clips are byte-for-byte copies of speaker 46's, with the same sex and age: one
# person entered twice. Kept apart, the copies would sit on both sides of a speaker-wise fold.
BAVED_SAME_SPEAKER = {"53": "46"}
