/** The gradient rule of each supported op of the default ONNX domain. */
import type { GradRule } from './gradient-rule.ts'
import { ELEMENTWISE_RULES } from './rules-elementwise.ts'
import { LINEAR_RULES } from './rules-linear.ts'
import { NN_RULES } from './rules-nn.ts'
import { TENSOR_RULES } from './rules-tensor.ts'

export const GRADIENT_RULES: Readonly<Record<string, GradRule>> = {
  ...ELEMENTWISE_RULES,
  ...LINEAR_RULES,
  ...NN_RULES,
  ...TENSOR_RULES
}

/** The ops that buildTrainingGraph can differentiate through. */
export const differentiableOps: readonly string[] = Object.keys(GRADIENT_RULES).sort()
