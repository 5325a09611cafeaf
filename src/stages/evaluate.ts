// SCAFFOLD: replaced by the stage's implementation.
import type { StageModule } from './types.js';
const stage: StageModule = {
  kind: 'evaluate', version: '0', outputKind: 'model',
  async run() { throw new Error('stage evaluate is not implemented yet'); },
};
export default stage;
