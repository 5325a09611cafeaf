// SCAFFOLD: replaced by the stage's implementation.
import type { StageModule } from './types.js';
const stage: StageModule = {
  kind: 'lora-finetune', version: '0', outputKind: 'model',
  async run() { throw new Error('stage lora-finetune is not implemented yet'); },
};
export default stage;
