// Prints one plain closing line that any CI reader understands: "tests: N passed, N failed, N skipped".
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const skipped = results.numPendingTests + results.numTodoTests;
    const failedSuites = results.numRuntimeErrorTestSuites;
    if (failedSuites > 0) console.log(`suites: ${failedSuites} failed to run`);
    console.log(
      `tests: ${results.numPassedTests} passed, ${results.numFailedTests + failedSuites} failed, ${skipped} skipped`,
    );
  }
}
module.exports = SummaryReporter;
