// SCAFFOLD: replaced by the stage's implementation.
import type { StageModule } from './types.js';
const stage: StageModule = {
  kind: 'score', version: '0', outputKind: 'model',
  async run() { throw new Error('stage score is not implemented yet'); },
};
export default stage;
