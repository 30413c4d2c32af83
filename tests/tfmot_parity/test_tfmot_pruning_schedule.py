"""Port of tfmot's sparsity/keras/pruning_schedule_test.py to keras_compress on Keras 3.

Same test names and assertions. Changes forced by Keras 3 / this package:
imports; tfmot's ``keras.utils.deserialize_keras_object`` is
``keras.saving.deserialize_keras_object``; the graph-mode variants of
``run_all_keras_modes`` do not exist (Keras 3 runs eagerly).
"""

import keras
import tensorflow as tf
from absl.testing import parameterized
from tfmot_compat import TestCase

from keras_compress.pruning import schedules as pruning_schedule


@parameterized.named_parameters(
    {"testcase_name": "ConstantSparsity", "schedule_type": "constant_sparsity"},
    {"testcase_name": "PolynomialDecay", "schedule_type": "polynomial_decay"},
)
class PruningScheduleTest(TestCase, parameterized.TestCase):
    """PruningSchedule behaviour for step parameters, for every schedule class."""

    @staticmethod
    def _construct_pruning_schedule(schedule_type, begin_step, end_step, frequency=10):
        # Default sparsity values: only begin_step, end_step and frequency are tested.
        if schedule_type == "constant_sparsity":
            return pruning_schedule.ConstantSparsity(0.5, begin_step, end_step, frequency)
        elif schedule_type == "polynomial_decay":
            return pruning_schedule.PolynomialDecay(0.2, 0.8, begin_step, end_step, 3, frequency)

    def testBeginStepGreaterThanEqualsZero(self, schedule_type):
        with self.assertRaises(ValueError):
            self._construct_pruning_schedule(schedule_type, -1, 1000)
        with self.assertRaises(ValueError):
            self._construct_pruning_schedule(schedule_type, -5, 1000)

        self._construct_pruning_schedule(schedule_type, 0, 1000)
        self._construct_pruning_schedule(schedule_type, 1, 1000)
        self._construct_pruning_schedule(schedule_type, 100, 1000)

    def testEndStepGreaterThanEqualsZero(self, schedule_type):
        with self.assertRaises(ValueError):
            self._construct_pruning_schedule(schedule_type, 10, -5)

        self._construct_pruning_schedule(schedule_type, 0, 0)
        self._construct_pruning_schedule(schedule_type, 0, 1)
        self._construct_pruning_schedule(schedule_type, 0, 100)

    def testEndStepGreaterThanEqualsBeginStep(self, schedule_type):
        with self.assertRaises(ValueError):
            self._construct_pruning_schedule(schedule_type, 10, 5)

        self._construct_pruning_schedule(schedule_type, 10, 10)
        self._construct_pruning_schedule(schedule_type, 10, 20)

    def testFrequencyIsPositive(self, schedule_type):
        with self.assertRaises(ValueError):
            self._construct_pruning_schedule(schedule_type, 10, 1000, 0)
        with self.assertRaises(ValueError):
            self._construct_pruning_schedule(schedule_type, 10, 1000, -1)
        with self.assertRaises(ValueError):
            self._construct_pruning_schedule(schedule_type, 10, 1000, -5)

        self._construct_pruning_schedule(schedule_type, 10, 1000, 1)
        self._construct_pruning_schedule(schedule_type, 10, 1000, 10)

    def _validate_sparsity(self, schedule_construct_fn):
        # Should not be < 0.0
        with self.assertRaises(ValueError):
            schedule_construct_fn(-0.001)
        with self.assertRaises(ValueError):
            schedule_construct_fn(-1.0)
        with self.assertRaises(ValueError):
            schedule_construct_fn(-10.0)

        # Should not be >= 1.0
        with self.assertRaises(ValueError):
            schedule_construct_fn(1.0)
        with self.assertRaises(ValueError):
            schedule_construct_fn(10.0)

        schedule_construct_fn(0.0)
        schedule_construct_fn(0.001)
        schedule_construct_fn(0.5)
        schedule_construct_fn(0.99)

    def testSparsityValueIsValid(self, schedule_type):
        if schedule_type == "constant_sparsity":
            self._validate_sparsity(lambda s: pruning_schedule.ConstantSparsity(s, 0))
        elif schedule_type == "polynomial_decay":
            self._validate_sparsity(lambda s: pruning_schedule.PolynomialDecay(s, 0.8, 0, 10))
            self._validate_sparsity(lambda s: pruning_schedule.PolynomialDecay(0.2, s, 0, 10))

    # Tests to ensure begin_step, end_step, frequency are used correctly.

    def testPrunesOnlyInBeginEndStepRange(self, schedule_type):
        sparsity = self._construct_pruning_schedule(schedule_type, 100, 200, 1)

        # Before begin step
        step_90 = tf.Variable(90)
        step_99 = tf.Variable(99)
        # In range
        step_100 = tf.Variable(100)
        step_110 = tf.Variable(110)
        step_200 = tf.Variable(200)
        # After end step
        step_201 = tf.Variable(201)
        step_210 = tf.Variable(210)

        self.assertFalse(self.evaluate(sparsity(step_90))[0])
        self.assertFalse(self.evaluate(sparsity(step_99))[0])

        self.assertTrue(self.evaluate(sparsity(step_100))[0])
        self.assertTrue(self.evaluate(sparsity(step_110))[0])
        self.assertTrue(self.evaluate(sparsity(step_200))[0])

        self.assertFalse(self.evaluate(sparsity(step_201))[0])
        self.assertFalse(self.evaluate(sparsity(step_210))[0])

    def testOnlyPrunesAtValidFrequencySteps(self, schedule_type):
        sparsity = self._construct_pruning_schedule(schedule_type, 100, 200, 10)

        step_100 = tf.Variable(100)
        step_109 = tf.Variable(109)
        step_110 = tf.Variable(110)
        step_111 = tf.Variable(111)

        self.assertFalse(self.evaluate(sparsity(step_109))[0])
        self.assertFalse(self.evaluate(sparsity(step_111))[0])

        self.assertTrue(self.evaluate(sparsity(step_100))[0])
        self.assertTrue(self.evaluate(sparsity(step_110))[0])


class ConstantSparsityTest(TestCase, parameterized.TestCase):
    def testPrunesForeverIfEndStepIsNegativeOne(self):
        sparsity = pruning_schedule.ConstantSparsity(0.5, 0, -1, 10)

        step_10000 = tf.Variable(10000)
        step_100000000 = tf.Variable(100000000)

        self.assertTrue(self.evaluate(sparsity(step_10000))[0])
        self.assertTrue(self.evaluate(sparsity(step_100000000))[0])

        self.assertAllClose(0.5, self.evaluate(sparsity(step_10000))[1])
        self.assertAllClose(0.5, self.evaluate(sparsity(step_100000000))[1])

    def testPrunesWithConstantSparsity(self):
        sparsity = pruning_schedule.ConstantSparsity(0.5, 100, 200, 10)

        step_100 = tf.Variable(100)
        step_110 = tf.Variable(110)
        step_200 = tf.Variable(200)

        self.assertAllClose(0.5, self.evaluate(sparsity(step_100))[1])
        self.assertAllClose(0.5, self.evaluate(sparsity(step_110))[1])
        self.assertAllClose(0.5, self.evaluate(sparsity(step_200))[1])

    def testSerializeDeserialize(self):
        sparsity = pruning_schedule.ConstantSparsity(0.7, 10, 20, 10)

        config = sparsity.get_config()
        sparsity_deserialized = keras.saving.deserialize_keras_object(
            config,
            custom_objects={
                "ConstantSparsity": pruning_schedule.ConstantSparsity,
                "PolynomialDecay": pruning_schedule.PolynomialDecay,
            },
        )

        self.assertEqual(sparsity.__dict__, sparsity_deserialized.__dict__)


class PolynomialDecayTest(TestCase, parameterized.TestCase):
    def testRaisesErrorIfEndStepIsNegative(self):
        with self.assertRaises(ValueError):
            pruning_schedule.PolynomialDecay(0.4, 0.8, 10, -1)

    def testPolynomialDecay_PrunesCorrectly(self):
        sparsity = pruning_schedule.PolynomialDecay(0.2, 0.8, 100, 110, 3, 2)

        step_100 = tf.Variable(100)
        step_102 = tf.Variable(102)
        step_105 = tf.Variable(105)
        step_110 = tf.Variable(110)

        # These values were generated using tf.polynomial_decay with the same
        # params in a colab to verify.
        self.assertAllClose(0.2, self.evaluate(sparsity(step_100))[1])
        self.assertAllClose(0.4928, self.evaluate(sparsity(step_102))[1])
        self.assertAllClose(0.725, self.evaluate(sparsity(step_105))[1])
        self.assertAllClose(0.8, self.evaluate(sparsity(step_110))[1])

    def testSerializeDeserialize(self):
        sparsity = pruning_schedule.PolynomialDecay(0.2, 0.6, 10, 20, 5, 10)

        config = sparsity.get_config()
        sparsity_deserialized = keras.saving.deserialize_keras_object(
            config,
            custom_objects={
                "ConstantSparsity": pruning_schedule.ConstantSparsity,
                "PolynomialDecay": pruning_schedule.PolynomialDecay,
            },
        )

        self.assertEqual(sparsity.__dict__, sparsity_deserialized.__dict__)
