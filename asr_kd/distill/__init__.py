"""Knowledge distillation (Hinton, Vinyals & Dean 2015), shared by the speech and image recipes."""
