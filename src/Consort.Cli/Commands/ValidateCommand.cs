using System.CommandLine;
using Consort.Evaluation;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort validate CONFIG</c>: every check <c>consort run</c> makes before work (the same <see cref="RunPlan"/>),
/// without loading weights or downloading: config, split, limit, output folder, dataset and items, model files,
/// capabilities, vocabularies, hyperparameters, and the prompt the models will get.
/// </summary>
public sealed class ValidateCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string>("config") { Description = "Run config (JSON)." };
        var outDir = new Option<string?>("--out") { Description = "Output folder to check (default: runs/<config name>)." };
        var split = new Option<string?>("--split") { Description = "dev or test." };
        var limit = new Option<int?>("--limit") { Description = "Item sample size to check." };
        var only = new Option<string[]>("--only") { Description = "Check only these runs.", AllowMultipleArgumentsPerToken = true };
        var shard = new Option<string?>("--shard") { Description = "Shard i/n to check." };
        var cmd = new Command("validate", "Check a run config as `consort run` would before any work, without loading weights.")
        {
            config, outDir, split, limit, only, shard,
        };
        cmd.SetAction(async (pr, ct) =>
        {
            var plan = await RunPlan.PrepareAsync(new RunRequest
            {
                ConfigPath = pr.GetValue(config)!, OutDir = pr.GetValue(outDir), Split = pr.GetValue(split), Limit = pr.GetValue(limit),
                Only = pr.GetValue(only) ?? [], Shard = pr.GetValue(shard) is { } s ? ShardSpec.Parse(s) : null,
            }, null, download: false, ct);
            var task = plan.Task!;
            AnsiConsole.MarkupLine($"ok: {Markup.Escape(plan.Config.Name)}: {plan.Runs.Count} run(s) on {Markup.Escape(task.Name)} " +
                                   $"({Markup.Escape(plan.Split)}, {plan.Items.Count} items; prompt: {task.PromptStyle}) -> {Markup.Escape(plan.OutDir)}");
            foreach (var r in plan.Runs)
                AnsiConsole.MarkupLine($"  {Markup.Escape(r.Name)}: definition {plan.Definitions[r.Name].Digest[..12]}");
            foreach (var hf in plan.NotDownloaded)
                AnsiConsole.MarkupLine($"  note: {Markup.Escape(hf)} is not downloaded yet; `consort run` downloads it and checks it then");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
