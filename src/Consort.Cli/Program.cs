using Consort.Cli;
using Spectre.Console;

// The crash-proof first load runs this program as its child (consort probe FILE).
Consort.LlamaCpp.LlamaProbe.Launcher ??= typeof(CliApp).Assembly.Location;
// Logs and CI capture output: give tables room instead of the 80-column default.
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
return await CliRunner.InvokeAsync(CliApp.CreateRoot(), args);
