"""What a learner keeps and shares: one project file with a session's work (:mod:`.project`)."""
