"""What the report read but did not average: run folders whose files it cannot use, and second copies of a run."""


def markdown_left_out(sentences: list) -> str:
    """The run folders left out, one sentence each (the file, what is wrong with it, the fix)."""
    if not sentences:
        return ""
    return "\n".join([f"Runs left out, their files unusable ({len(sentences)}):", ""]
                     + [f"- {sentence}" for sentence in sentences])


def markdown_duplicates(duplicates: list) -> str:
    """Each run found more than once, the copy counted and the copies left out."""
    if not duplicates:
        return ""
    lines = [f"Duplicate runs, each counted once ({len(duplicates)}):", ""]
    for kept, others in duplicates:
        lines.append(f"- duplicate: {', '.join(str(o['dir']) for o in others)} "
                     f"{'holds' if len(others) == 1 else 'hold'} the same run as {kept['dir']} (the same config, "
                     "settings that change no result aside), which is the one counted")
    return "\n".join(lines)
