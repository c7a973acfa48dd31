using Consort.Evaluation;
using Spectre.Console;

namespace Consort.Cli;

/// <summary>Renders evaluation progress: a live bar on a terminal, a few plain lines otherwise (CI logs).</summary>
public static class ProgressView
{
    /// <summary>Runs <paramref name="work"/> while showing its progress.</summary>
    public static async Task<EvalSummary> RunAsync(string name, int total, Func<IProgress<EvalProgress>, Task<EvalSummary>> work)
    {
        if (Console.IsOutputRedirected || !AnsiConsole.Profile.Capabilities.Interactive)
        {
            int lastDecile = -1;
            var plain = new Progress<EvalProgress>(p =>
            {
                int decile = p.Total == 0 ? 10 : p.Done * 10 / p.Total;
                if (decile == lastDecile) return;
                lastDecile = decile;
                Console.WriteLine($"  {name}: {p.Done}/{p.Total} score {p.Score:F3}{(p.Errors > 0 ? $" errors {p.Errors}" : "")}{(p.Resumed > 0 ? $" (resumed {p.Resumed})" : "")}");
            });
            return await work(plain);
        }
        EvalSummary? result = null;
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .StartAsync(async ctx =>
            {
                var bar = ctx.AddTask(Markup.Escape(name), maxValue: Math.Max(1, total));
                var progress = new SyncProgress(p =>
                {
                    bar.Value = p.Done;
                    bar.Description = $"{Markup.Escape(name)} [grey]score {p.Score:F3}{(p.Errors > 0 ? $" errors {p.Errors}" : "")}[/]";
                });
                result = await work(progress);
                bar.Value = bar.MaxValue;
            });
        return result!;
    }

    // Progress<T> posts to the thread pool; updating the bar inline keeps it in order.
    private sealed class SyncProgress(Action<EvalProgress> report) : IProgress<EvalProgress>
    {
        public void Report(EvalProgress value) { lock (this) report(value); }
    }
}
