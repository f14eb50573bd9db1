/**
 * A worker in its own process, for crash tests: the suite SIGKILLs it mid-step and starts another.
 * Env: TEMPORAL_ADDRESS, DATABASE_URL, LIBVIRT_URI, TEST_HOST_NAME, TEST_HANG ("step:phase", optional),
 * TEST_UPLOAD_SEGMENT_MS (optional: an image upload writes each segment after this long, and prints
 * "SEGMENT <offset>" first). Prints "READY" when polling and "HANG <step:phase>" when it reaches the armed step.
 */
import 'reflect-metadata';
import { NativeConnection } from '@temporalio/worker';
import { ArmedFaults, type FaultPhase } from '../../src/activities/faults';
import { createDataSource } from '../../src/entities/data-source';
import { LibvirtProvider } from '../../src/libvirt/provider';
import { SecretBox } from '../../src/secrets';
import { createWorkers, runWorkers } from '../../src/worker/worker';
import { withUploadHook } from './stack';

async function main(): Promise<void> {
  const env = process.env;
  const faults = new ArmedFaults();
  if (env.TEST_HANG) {
    const [step, phase] = env.TEST_HANG.split(/:(?=before$|after$)/);
    faults.arm(step, phase as FaultPhase, { hang: true });
    faults.onHang = (key) => console.log(`HANG ${key}`);
  }
  const dataSource = createDataSource(env.DATABASE_URL!);
  await dataSource.initialize();
  let libvirt = new LibvirtProvider(env.LIBVIRT_URI ?? 'qemu:///system');
  if (env.TEST_UPLOAD_SEGMENT_MS) {
    const ms = Number(env.TEST_UPLOAD_SEGMENT_MS);
    libvirt = withUploadHook(libvirt, async (phase, { offset }) => {
      if (phase !== 'before') return;
      console.log(`SEGMENT ${offset}`);
      await new Promise((r) => setTimeout(r, ms));
    });
  }
  const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS! });
  const workers = await createWorkers({
    connection,
    namespace: 'default',
    hostName: env.TEST_HOST_NAME!,
    deps: { libvirt, dataSource, secrets: new SecretBox('vmflow-test-secrets-key-0123456789'), faults },
  });
  console.log('READY');
  await runWorkers(workers);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
