"""What the teacher-student stages of the comparison methods (UniFrame, CC-SSL) share."""

from __future__ import annotations

import numpy as np

from synpose_keras.training.mean_teacher import copy_weights


class TeacherStudentStage:
    """Mixin for a ``keras.Model`` stage with ``student``, ``teacher`` and ``trackers``.

    Gives the Keras ``metrics`` (the trackers), ``build_all`` (every weight, before a checkpoint
    restore) and ``initialize_teacher`` (teacher <- student).
    """

    @property
    def metrics(self):
        return list(self.trackers.values())

    def build_all(self, input_size):
        """Creates the student's, the teacher's and the optimizer's weights."""
        dummy = np.zeros((1, input_size, input_size, 3), np.float32)
        self.student(dummy)
        self.teacher(dummy)
        self.optimizer.build(self.student.trainable_variables)
        self.built = True

    def initialize_teacher(self):
        copy_weights(self.teacher, self.student)
