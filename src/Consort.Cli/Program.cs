using Consort.Cli;
using Spectre.Console;

// Logs and CI capture output: give tables room instead of the 80-column default.
if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
return await CliRunner.InvokeAsync(CliApp.CreateRoot(), args);
