"""What is said for what is written: text normalisation, pronunciation lexicons and an SSML subset,
turned into the pieces and exact pauses a job speaks (:func:`.prepare.for_job`)."""
