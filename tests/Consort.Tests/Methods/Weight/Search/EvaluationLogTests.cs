using Consort.Methods.Weight.Search;
using Consort.Testing;
using Xunit;

namespace Consort.Tests.Methods.Weight.Search;

public sealed class EvaluationLogTests
{
    [Fact]
    public async Task A_second_run_reads_finished_evaluations_back_and_ignores_a_torn_line()
    {
        using var dir = new TempDir();
        var path = dir.File("search/evaluations.jsonl");
        int calls = 0;
        ValueTask<double> Eval(double[] x, CancellationToken _) { calls++; return ValueTask.FromResult(-x.Sum(v => v * v)); }
        var log = new EvaluationLog(path, "test v1");
        Assert.Equal(-1.25, await log.ScoreAsync([1, 0.5], Eval, default));
        Assert.Equal(-4, await log.ScoreAsync([2, 0], Eval, default));
        Assert.Equal(-1.25, await log.ScoreAsync([1, 0.5], Eval, default));
        Assert.Equal(2, calls);
        File.AppendAllText(path, "{\"key\":\"3,0\",\"point\":[3,"); // a kill in the middle of a write

        var again = new EvaluationLog(path, "test v1");
        Assert.Equal(2, again.Resumed);
        Assert.Equal(-4, await again.ScoreAsync([2, 0], Eval, default));
        Assert.Equal(2, calls);
        Assert.Equal(-9, await again.ScoreAsync([3, 0], Eval, default));
        Assert.Equal(3, calls);

        // Another search's log is set aside, not reused.
        var other = new EvaluationLog(path, "test v2");
        Assert.Equal(0, other.Resumed);
        Assert.True(File.Exists(path + ".old"));
    }
}
