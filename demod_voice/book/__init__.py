"""``book``: a whole book in, a chaptered audiobook out, each take checked and remade where it failed.

read.py (inputs to chapters), takes.py (chapters to takes), run.py (takes as engine jobs, resume,
progress), verify.py (takes heard back by a recogniser job), master.py (loudness, trimming,
timings), mux.py (containers through PyAV), captions.py (SRT/VTT).
"""
