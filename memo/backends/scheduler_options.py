"""Which scheduler option a word after ``--`` sets, abbreviations included.

memo sets some qsub/sbatch options itself (the array, waiting, the job script) and refuses
them in the user's words. Schedulers accept each option in more than one spelling, so the
check reads words as they do: sbatch parses with getopt_long (a long option may be cut to
a prefix, ``--arr=1-3``; short options cluster and take their value attached, ``-a1-3``,
``-vW``), qsub takes some values glued to the option (``-t1-3``, ``-by``).
"""

import re

# sbatch's short options that take no value (the others take one: the rest of the word
# or the next word); from slurm's sbatch --help.
SBATCH_FLAGS = frozenset("hHIkOQsuvVW")


def getopt_option(word: str, forbidden, flags=SBATCH_FLAGS) -> str | None:
    """The forbidden option (as spelled in ``forbidden``) that ``word`` sets, read as
    getopt_long reads it; None if none.

    >>> opts = ("--array", "-a", "--wait", "-W")
    >>> [getopt_option(w, opts) for w in ("-a1-3", "--arr=1-3", "--wai", "-vW", "-p", "-pa")]
    ['-a', '--array', '--wait', '-W', None, None]
    """
    if word.startswith("--") and len(word) > 2:
        name = word[2:].split("=", 1)[0]
        for option in forbidden:
            if option.startswith("--") and option[2:].startswith(name):
                return option
        return None
    if word.startswith("-") and len(word) > 1:
        for letter in word[1:]:
            if f"-{letter}" in forbidden:
                return f"-{letter}"
            if letter not in flags:  # it takes a value: the rest of the word is that
                return None
    return None


def qsub_option(word: str, attached: dict) -> str | None:
    """The forbidden qsub option that ``word`` sets, written alone or with its value glued on
    (``attached``: option -> regex its glued value matches); None if none.

    >>> attached = {"-t": r"\\d", "-b": r"(?i)(y|n|yes|no)$", "-sync": r""}
    >>> [qsub_option(w, attached) for w in ("-t", "-t1-3", "-by", "-terse", "-binding", "-q")]
    ['-t', '-t', '-b', None, None, None]
    """
    for option, value in attached.items():
        if word == option or (word.startswith(option) and re.match(value, word[len(option) :])):
            return option
    return None
