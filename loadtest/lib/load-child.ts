import { runLoad, type LoadOptions } from './lookup-load.js';

// One load process of runLoadAcrossProcesses: runs its share and reports back.
process.once('message', (options: LoadOptions) => {
  void runLoad(options).then((result) => process.send!({ ...result, latency: result.latency.toJSON() }));
});
